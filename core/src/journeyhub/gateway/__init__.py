"""The HTTP gateway (Litestar)."""
