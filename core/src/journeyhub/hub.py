"""The running hub: settings, plugins, store, bus and an HTTP client, started and stopped together.

Every process (``serve``, ``gateway``, ``worker``) builds one Hub.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from journeyhub.bus.embedded import EmbeddedNats
from journeyhub.bus.jetstream import Bus
from journeyhub.connection_cache import ConnectionCache
from journeyhub.logs import get_logger
from journeyhub.plugins import PluginRegistry, get_plugin_manager
from journeyhub.resilience.auth import Authenticator
from journeyhub.secretbox import load_secret_box
from journeyhub.settings import Settings
from journeyhub.store.db import migrate
from journeyhub.store.store import Store
from journeyhub.vendor_http import VendorHttp

log = get_logger(__name__)
NATS_URL_FILE = "nats.url"


@dataclass
class Hub:
    settings: Settings
    registry: PluginRegistry
    store: Store
    bus: Bus
    http: VendorHttp
    embedded_nats: EmbeddedNats | None = None
    connection_cache: ConnectionCache = field(init=False)
    auth: Authenticator = field(init=False)
    _closed: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.connection_cache = ConnectionCache(self.store)
        self.auth = Authenticator(self)

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        run_migrations: bool = True,
        registry: PluginRegistry | None = None,
        provision: bool = True,
    ) -> Hub:
        """Start every part in order; on failure, stop what was started and re-raise."""
        if registry is None:
            registry = get_plugin_manager(only=settings.plugins, trace=settings.trace_hooks)
        if run_migrations:
            await asyncio.to_thread(migrate, settings)
        store = Store(settings, load_secret_box(settings))
        embedded: EmbeddedNats | None = None
        bus: Bus | None = None
        try:
            url = settings.nats_url
            if url is None:
                embedded = await asyncio.to_thread(EmbeddedNats(settings.data_dir / "nats").start)
                url = embedded.url
                # Lets CLI commands run beside `serve` share its embedded bus.
                (settings.data_dir / NATS_URL_FILE).write_text(url)
                log.info("embedded_nats_started", url=url, store_dir=str(embedded.store_dir))
            bus = await Bus(settings, url, replicas=settings.stream_replicas).connect()
            if provision:
                await bus.provision()
        except BaseException:
            if bus is not None:
                await bus.close()
            if embedded is not None:
                embedded.stop()
            await store.close()
            raise
        http = VendorHttp(timeout=10.0, connect_timeout=5.0, limit=200)
        return cls(settings, registry, store, bus, http, embedded)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.http.aclose()
        try:
            await self.bus.close()
        finally:
            await self.store.close()
            if self.embedded_nats is not None:
                (self.settings.data_dir / NATS_URL_FILE).unlink(missing_ok=True)
                self.embedded_nats.stop()
                log.info("embedded_nats_stopped")
