"""journeyhub connector for lightblue."""
