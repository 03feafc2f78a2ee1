"""journeyhub connector for Stripe: signed webhooks and a catch-up of missed events, turned
into payment triggers. The fake Stripe for tests and the demo: :mod:`.sandbox`."""
