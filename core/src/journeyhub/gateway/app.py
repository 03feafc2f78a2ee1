"""The Litestar application factory."""

from __future__ import annotations

import uuid

import structlog
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import ASGIMiddleware, DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.types import ASGIApp, ControllerRouterHandler, Receive, Scope, Send

from journeyhub import __version__
from journeyhub.gateway.auth import BearerKeyMiddleware
from journeyhub.gateway.clients_api import ClientsController
from journeyhub.gateway.connections_api import ConnectionsController
from journeyhub.gateway.dashboard import DASHBOARD_PATHS, dashboard_handlers, template_config
from journeyhub.gateway.docs import document_common_errors
from journeyhub.gateway.errors import internal_error_handler
from journeyhub.gateway.events_api import EventsController
from journeyhub.gateway.health import HealthController
from journeyhub.gateway.health_api import ConnectionHealthController
from journeyhub.gateway.incidents_api import IncidentsController
from journeyhub.gateway.ingress import Ingress
from journeyhub.gateway.metrics_api import MetricsController
from journeyhub.gateway.oauth_api import OAuthCallbackController, OAuthStartController
from journeyhub.gateway.operations_api import OperationsController
from journeyhub.gateway.plugins_api import PluginsController
from journeyhub.gateway.redelivery_api import RedeliveryController
from journeyhub.gateway.webhooks import WebhooksController
from journeyhub.hub import Hub

# Paths open without a key: probes, metrics, the schema, vendors' webhooks (which are
# authenticated by their own signatures) and the OAuth callback (by its one-time state).
# The dashboard's pages authenticate with their own session instead.
PUBLIC_PATHS = [
    "^/health$",
    "^/ready$",
    "^/metrics$",
    "^/schema",
    "^/webhooks/",
    "^/oauth/callback$",
    *DASHBOARD_PATHS,
]


class RequestIdMiddleware(ASGIMiddleware):
    """Bind one request id (the caller's ``x-request-id`` or a new one) to every log line."""

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"x-request-id", b"")
        request_id = raw.decode("latin-1")[:80] if raw else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id, correlation_id=request_id)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)  # type: ignore[arg-type]

        await next_app(scope, receive, send_with_id)  # type: ignore[arg-type]


def route_handlers() -> list[ControllerRouterHandler]:
    return [
        HealthController,
        MetricsController,
        PluginsController,
        ConnectionHealthController,
        ConnectionsController,
        OAuthStartController,
        OAuthCallbackController,
        ClientsController,
        RedeliveryController,
        EventsController,
        OperationsController,
        IncidentsController,
        WebhooksController,
    ]


def create_app(hub: Hub, extra_handlers: list[ControllerRouterHandler] | None = None) -> Ingress:
    """The gateway's ASGI app: inbound webhooks and journey events on their own fast path
    (``gateway/ingress.py``), everything else through the Litestar application (``.app``)."""

    def provide_hub(state: State) -> Hub:
        return state.hub

    config = AppConfig(
        route_handlers=[*route_handlers(), *dashboard_handlers(hub), *(extra_handlers or [])],
        state=State({"hub": hub}),
        dependencies={"hub": Provide(provide_hub, sync_to_thread=False)},
        middleware=[
            RequestIdMiddleware(),
            DefineMiddleware(BearerKeyMiddleware, exclude=PUBLIC_PATHS),
        ],
        exception_handlers={500: internal_error_handler},
        template_config=template_config(),
        openapi_config=OpenAPIConfig(
            title="journeyhub",
            version=__version__,
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        request_max_body_size=hub.settings.webhook_max_bytes * 8,
        debug=False,
    )
    return Ingress(hub, document_common_errors(Litestar.from_config(config)))
