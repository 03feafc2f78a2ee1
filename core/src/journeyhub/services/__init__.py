"""What the API (``gateway/``), the CLI (``cli/``) and the dashboard share: the operations on
connections, tenants and keys, and emitting triggers. They call these, never each other, and
not the store directly for these operations.

A service takes what it needs and nothing more: the :class:`~journeyhub.store.store.Store`
(and the :class:`~journeyhub.plugins.PluginRegistry`) when the store is enough, so that a CLI
command runs it without a bus; the :class:`~journeyhub.hub.Hub` when it needs the bus. Bad
input raises :class:`~journeyhub.services.errors.InvalidInput` naming the field; the API
answers it with a 422, the CLI prints it and exits 2.

- :mod:`.connections`: validate, create, update, delete and check connections; ask for a sync.
- :mod:`.tenants` and :mod:`.keys`: tenants, their API keys, the secret keys' rotation.
- :mod:`.dead_letters`: dead letters listed by filter, and replayed.
- :mod:`.clients`: erasing one client's personal data (with :mod:`.erasure`: who the client is).
- :mod:`.triggers`: one source's drafts (a webhook batch, a pulled page, an imported file)
  published and recorded as triggers, once each.
"""
