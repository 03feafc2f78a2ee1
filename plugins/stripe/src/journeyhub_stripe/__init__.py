"""journeyhub connector for Stripe: signed webhooks and a catch-up of missed events, turned
into payment triggers. Hooks in :mod:`journeyhub_stripe.plugin`; the fake Stripe for tests
and the demo in :mod:`journeyhub_stripe.sandbox`."""
