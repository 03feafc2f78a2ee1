"""journeyhub connector for seventeenhats."""
