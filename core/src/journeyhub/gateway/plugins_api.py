"""``GET /v1/plugins``: the loaded connectors and the ones that failed to load."""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency

from journeyhub.gateway.auth import require
from journeyhub.hub import Hub
from journeyhub.plugins import PluginRegistry


class PluginView(msgspec.Struct):
    name: str
    display_name: str
    version: str | None
    distribution: str | None
    capabilities: list[str]
    auth_kind: str
    rate_limit_per_second: float | None
    webhook_event_types: list[str]
    push_event_types: list[str]


class PluginError(msgspec.Struct):
    name: str
    reason: str


class ObserverView(msgspec.Struct):
    name: str
    version: str | None


class PluginsView(msgspec.Struct):
    plugins: list[PluginView]
    errors: list[PluginError]
    observers: list[ObserverView] = []


def describe_plugins(registry: PluginRegistry) -> PluginsView:
    views = []
    for name, loaded in sorted(registry.connectors.items()):
        info = loaded.info
        rate = info.rate_limit.requests / info.rate_limit.per_seconds if info.rate_limit else None
        views.append(
            PluginView(
                name=name,
                display_name=info.display_name,
                version=loaded.version,
                distribution=loaded.distribution,
                capabilities=sorted(info.capabilities),
                auth_kind=info.auth_kind,
                rate_limit_per_second=rate,
                webhook_event_types=list(info.webhook_event_types),
                push_event_types=list(info.push_event_types),
            )
        )
    errors = [PluginError(e.name, e.reason) for e in registry.errors]
    observers = [
        ObserverView(name, version) for name, version in sorted(registry.observers.items())
    ]
    return PluginsView(plugins=views, errors=errors, observers=observers)


class PluginsController(Controller):
    path = "/v1/plugins"
    tags = ["plugins"]

    # The guard on the handler, not the controller: a controller's guards also guard the
    # OPTIONS answer that Litestar makes, which the key middleware lets through unauthenticated.
    @get("/", operation_id="listPlugins", guards=[require("read")])
    async def list_plugins(self, hub: NamedDependency[Hub]) -> PluginsView:
        """Connectors loaded in this process, with their capabilities, and load errors."""
        return describe_plugins(hub.registry)
