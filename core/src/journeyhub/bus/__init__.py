"""The bus: NATS JetStream between the gateway and the workers."""
