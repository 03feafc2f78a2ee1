"""journeyhub connector for tave."""
