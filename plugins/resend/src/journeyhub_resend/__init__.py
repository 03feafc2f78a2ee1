"""journeyhub connector for resend."""
