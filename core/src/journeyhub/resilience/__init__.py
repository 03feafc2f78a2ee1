"""Resilience: per-connection rate limits and circuit breakers, shared by every worker."""
