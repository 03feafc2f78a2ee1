"""The operations dashboard at ``/``: server-rendered pages for the people who keep the hub
running. One tenant at a time, signed in with one of its API keys.

- ``GET /`` connections with their health, dead letters (replay), recent failures with the
  vendor's answer, recent deliveries and the last triggers; ``GET /connections/{id}`` one
  connection in detail. A ``read`` key may look (an ``ingest``-only key cannot sign in);
  replaying and resending need an ``admin`` key.
- Sign-in (``/login``): the key is checked like a Bearer key and kept in Litestar's encrypted
  cookie session; every request authenticates it again, so a revoked key signs the session
  out. Forms are checked by Litestar's CSRF middleware, on top of ``SameSite=Strict``. Pages
  send a strict Content-Security-Policy (no inline script or style, nothing from another
  origin) and are never cached.

These paths are outside the Bearer middleware (:data:`DASHBOARD_PATHS`, added to the app's
public paths); they authenticate with the session instead.

- :mod:`.controller` the routes, and :func:`dashboard_handlers` for the app;
- :mod:`.clients` the client pages: the header's search (``/clients?q=``) and one client's
  timeline (``/clients/{client_id}``), with a Replay button on its dead letters;
- :mod:`.sessions` the session and CSRF middleware, who is signed in, messages for the next page;
- :mod:`.views` what a page shows; :mod:`.assessment` a connection's state in one word;
- :mod:`.formatting` times, rates and names for the templates (``templates/``; ``static/``
  holds the stylesheet and the script).
"""

from journeyhub.gateway.dashboard.assessment import Assessment, assess
from journeyhub.gateway.dashboard.controller import DASHBOARD_PATHS, dashboard_handlers
from journeyhub.gateway.dashboard.formatting import ago, template_config

__all__ = [
    "DASHBOARD_PATHS",
    "Assessment",
    "ago",
    "assess",
    "dashboard_handlers",
    "template_config",
]
