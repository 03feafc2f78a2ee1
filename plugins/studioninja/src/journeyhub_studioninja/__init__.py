"""journeyhub connector for studioninja."""
