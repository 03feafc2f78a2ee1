"""journeyhub connector for honeybook."""
