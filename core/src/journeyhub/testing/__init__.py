"""Testing support for the kernel and for connector authors: a pytest plugin with fixtures
(a real nats-server, a migrated store, a running hub), local vendor sandboxes with fault
injection, and the connector contract kit."""
