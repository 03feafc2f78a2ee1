"""Workers: JetStream consumers that route, push, and turn webhooks into triggers."""
