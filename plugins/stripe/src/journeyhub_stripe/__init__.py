"""journeyhub connector for stripe."""
