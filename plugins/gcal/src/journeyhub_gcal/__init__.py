"""journeyhub connector for gcal."""
