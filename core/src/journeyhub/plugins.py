"""Plugin discovery and dispatch.

Connectors are distributions that declare an entry point in the ``journeyhub.connectors`` group;
the entry-point name is the vendor name. The kernel's own default plugins go through the same
hooks. A plugin that fails to import or does not match the specs is reported with its reason and
the others still load.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import msgspec
import pluggy

from journeyhub import hookspecs
from journeyhub.configs import config_as, credentials_as
from journeyhub.errors import ConnectorNotFound
from journeyhub.logs import get_logger
from journeyhub.model import ConnectorInfo

ENTRY_POINT_GROUP = "journeyhub.connectors"
# The kernel's own plugins, registered like any other (datasette's DEFAULT_PLUGINS).
DEFAULT_PLUGINS: dict[str, str] = {
    "webhook": "journeyhub.connectors.webhook",
    "operations": "journeyhub.connectors.operations",
}
# Hooks that belong to one vendor: never broadcast.
VENDOR_HOOKS = frozenset(
    {
        "journeyhub_authenticate",
        "journeyhub_push",
        "journeyhub_push_batch",
        "journeyhub_pull",
        "journeyhub_verify_webhook",
        "journeyhub_handle_webhook",
        "journeyhub_check_connection",
        "journeyhub_import_csv",
        "journeyhub_maintain",
        "journeyhub_takes_incidents",
        "journeyhub_oauth_client",
    }
)

# Hooks every plugin may observe: broadcast, synchronous.
OBSERVER_HOOKS = frozenset({"journeyhub_delivery_finished", "journeyhub_trigger_emitted"})

log = get_logger(__name__)


@dataclass(frozen=True)
class LoadError:
    name: str
    reason: str


@dataclass(frozen=True)
class LoadedConnector:
    info: ConnectorInfo
    distribution: str | None
    version: str | None


@dataclass
class PluginRegistry:
    """The plugin manager plus what we learnt loading it."""

    pm: pluggy.PluginManager
    connectors: dict[str, LoadedConnector] = field(default_factory=dict)
    errors: list[LoadError] = field(default_factory=list)
    observers: dict[str, str | None] = field(default_factory=dict)  # name -> version
    _callers: dict[tuple[str, str], Any] = field(default_factory=dict)
    _takes: dict[tuple[str, str, str], bool] = field(default_factory=dict)

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def connector(self, vendor: str) -> ConnectorInfo:
        try:
            return self.connectors[vendor].info
        except KeyError:
            raise ConnectorNotFound(
                f"no connector plugin is loaded for vendor {vendor!r}"
            ) from None

    def implements(self, vendor: str, hook_name: str) -> bool:
        plugin = self.pm.get_plugin(vendor)
        return plugin is not None and any(
            impl.plugin is plugin for impl in getattr(self.pm.hook, hook_name).get_hookimpls()
        )

    def takes(self, vendor: str, hook_name: str, argument: str) -> bool:
        """Whether the vendor's implementation of ``hook_name`` takes ``argument``: hook
        parameters are opt-in, and the kernel prepares costly ones (the vendor id map, the
        suppression list) only for the plugins that take them."""
        key = (vendor, hook_name, argument)
        taken = self._takes.get(key)
        if taken is None:
            plugin = self.pm.get_plugin(vendor)
            taken = plugin is not None and any(
                impl.plugin is plugin and argument in impl.argnames
                for impl in getattr(self.pm.hook, hook_name).get_hookimpls()
            )
            self._takes[key] = taken
        return taken

    async def call(self, vendor: str, hook_name: str, **kwargs: Any) -> Any:
        """Call ``hook_name`` on the one plugin that owns ``vendor`` and await the answer.

        Routing by plugin name (not ``firstresult``) means an ``async def`` implementation of
        another vendor can never answer in its place: a coroutine is never ``None``.
        """
        if hook_name not in VENDOR_HOOKS:
            raise ValueError(f"{hook_name} is broadcast, not a vendor hook")
        if vendor not in self.connectors:
            raise ConnectorNotFound(f"no connector plugin is loaded for vendor {vendor!r}")
        caller = self._callers.get((vendor, hook_name))
        if caller is None:
            others = [p for name, p in self.pm.list_name_plugin() if name != vendor]
            caller = self.pm.subset_hook_caller(hook_name, remove_plugins=others)
            self._callers[(vendor, hook_name)] = caller
        if not caller.get_hookimpls():
            raise ConnectorNotFound(f"the {vendor!r} connector does not implement {hook_name}")
        if "connection" in kwargs:
            self._decode(vendor, hook_name, kwargs)
        results = caller(**kwargs)
        if not results:  # pluggy drops a None answer: that is the answer
            return None
        result = results[0]
        if inspect.isawaitable(result):
            result = await result
        return result

    def _decode(self, vendor: str, hook_name: str, kwargs: dict[str, Any]) -> None:
        """Fill ``config`` and ``creds`` for an implementation that takes them: the raw
        mappings decoded into the connector's own Structs. Credentials are decoded on every
        call (a refresh changes them); a config once per connection version."""
        info = self.connectors[vendor].info
        if "config" not in kwargs:
            kwargs["config"] = None
            schema: Any = info.config_schema
            if schema is not None and self.takes(vendor, hook_name, "config"):
                kwargs["config"] = config_as(kwargs["connection"], schema)
        if "creds" not in kwargs:
            kwargs["creds"] = None
            schema = info.credentials_schema
            if schema is not None and self.takes(vendor, hook_name, "creds"):
                kwargs["creds"] = credentials_as(kwargs.get("credentials") or {}, schema, vendor)

    def broadcast(self, hook_name: str, **kwargs: Any) -> None:
        """Call an observer hook on every plugin through pluggy (so hook tracing shows it),
        one plugin at a time: one failing observer does not stop the rest."""
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            caller = self._callers.get((impl.plugin_name, hook_name))
            if caller is None:
                others = [p for p in self.pm.get_plugins() if p is not impl.plugin]
                caller = self.pm.subset_hook_caller(hook_name, remove_plugins=others)
                self._callers[(impl.plugin_name, hook_name)] = caller
            try:
                caller(**kwargs)
            except Exception as exc:  # an observer must never break delivery
                log.warning(
                    "observer_failed", hook=hook_name, plugin=impl.plugin_name, error=repr(exc)
                )

    def register(self, plugin: object, name: str, distribution: str | None = None) -> None:
        """Register one plugin, validated against the specs; raise on mismatch. A plugin that
        implements ``journeyhub_connector`` is a connector; one that implements only observer
        hooks is an observer."""
        self.pm.register(plugin, name=name)
        try:
            self.pm.check_pending()
            _check_observers(self.pm, plugin)
            info = _describe(self.pm, plugin, name) if _is_connector(plugin) else None
        except Exception:
            self.pm.unregister(plugin)
            raise
        version = _dist_version(distribution)
        if info is None:
            self.observers[name] = version
        else:
            self.connectors[name] = LoadedConnector(
                info=info, distribution=distribution, version=version
            )
        self._callers.clear()
        self._takes.clear()

    def unregister(self, name: str) -> None:
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self.connectors.pop(name, None)
        self.observers.pop(name, None)
        self._callers.clear()
        self._takes.clear()


def _dist_version(distribution: str | None) -> str | None:
    if distribution is None:
        from journeyhub import __version__

        return __version__
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _is_connector(plugin: object) -> bool:
    return getattr(plugin, "journeyhub_connector", None) is not None


def _check_observers(pm: pluggy.PluginManager, plugin: object) -> None:
    """Observer hooks are called synchronously on the worker's path: an ``async def`` one
    would never run, so it is refused at load. A plugin that is no connector may implement
    observer hooks only."""
    connector = _is_connector(plugin)
    callers = pm.get_hookcallers(plugin) or []
    if not callers:
        raise TypeError("it implements no journeyhub hook")
    for caller in callers:
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            if caller.name in OBSERVER_HOOKS and inspect.iscoroutinefunction(impl.function):
                raise TypeError(
                    f"{caller.name} is an observer hook: implement it with a plain def, not "
                    "async def (observers are called synchronously and must be cheap)"
                )
            if not connector and caller.name not in OBSERVER_HOOKS:
                raise TypeError(
                    f"it implements {caller.name} but not journeyhub_connector: only a "
                    "connector may implement vendor hooks"
                )


def _describe(pm: pluggy.PluginManager, plugin: object, name: str) -> ConnectorInfo:
    describe = getattr(plugin, "journeyhub_connector", None)
    if describe is None:
        raise TypeError("it does not implement journeyhub_connector")
    info = describe()
    if not isinstance(info, ConnectorInfo):
        raise TypeError(f"journeyhub_connector returned {type(info).__name__}, not ConnectorInfo")
    if info.vendor != name:
        raise TypeError(f"it describes vendor {info.vendor!r} but is registered as {name!r}")
    for schema in (info.config_schema, info.credentials_schema):
        if schema is not None and not (
            isinstance(schema, type) and issubclass(schema, msgspec.Struct)
        ):
            raise TypeError("config and credentials schemas must be msgspec Struct types")
    return info


def _selected(names: Iterable[str], only: tuple[str, ...] | None) -> list[str]:
    return [n for n in names if only is None or n in only]


def get_plugin_manager(
    *,
    only: tuple[str, ...] | None = None,
    trace: bool = False,
    load_entry_points: bool = True,
) -> PluginRegistry:
    """Build the plugin manager: specs, default plugins, entry-point plugins, then validation.

    ``only`` (``JOURNEYHUB_PLUGINS``) loads just the named plugins; ``trace``
    (``JOURNEYHUB_TRACE_HOOKS``) logs every hook call.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    registry = PluginRegistry(pm=pm)

    for name in _selected(DEFAULT_PLUGINS, only):
        _load(registry, name, lambda n=name: import_module(DEFAULT_PLUGINS[n]), None)

    if load_entry_points:
        found: dict[str, EntryPoint] = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        for name in _selected(sorted(found), only):
            ep = found[name]
            if name in registry.connectors:
                registry.errors.append(LoadError(name, f"duplicate connector name from {ep.value}"))
                continue
            dist = ep.dist.name if ep.dist is not None else None
            _load(registry, name, ep.load, dist)

    if trace:
        _trace_hooks(pm)
    return registry


def _load(registry: PluginRegistry, name: str, loader: Any, distribution: str | None) -> None:
    try:
        plugin = loader()
        registry.register(plugin, name=name, distribution=distribution)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        registry.errors.append(LoadError(name, reason))
        log.error(
            "plugin_load_failed",
            plugin=name,
            reason=reason,
            where=traceback.format_exception_only(exc)[-1].strip(),
        )


def _trace_hooks(pm: pluggy.PluginManager) -> None:
    def before(hook_name: str, hook_impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        log.info(
            "hook_call",
            hook=hook_name,
            plugins=[impl.plugin_name for impl in hook_impls],
            args=sorted(kwargs),
        )

    def after(
        outcome: Any, hook_name: str, hook_impls: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> None:
        exc = outcome.exception
        log.info("hook_return", hook=hook_name, error=repr(exc) if exc else None)

    pm.add_hookcall_monitoring(before, after)
