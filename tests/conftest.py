"""Kernel tests. Infrastructure fixtures (nats_server, hub, gateway, tenant, workers) come
from the ``journeyhub.testing.fixtures`` pytest plugin that the kernel ships."""
