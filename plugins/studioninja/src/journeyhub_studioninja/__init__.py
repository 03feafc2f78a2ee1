"""journeyhub connector for Studio Ninja (see ``plugin``)."""
