"""journeyhub connector for Google Calendar.

Other connectors that read or write a Google Calendar (Studio Ninja syncs its jobs into one)
import these instead of copying them:

- ``GcalConfig`` / ``GcalCredentials``: the settings and OAuth credentials schemas;
- ``authenticate`` / ``refresh_access_token``: keep the access token fresh;
- ``list_events_page`` / ``event_record``: one page of a calendar's events with sync tokens;
- ``start_watch`` / ``stop_watch`` / ``renew_watch`` / ``needs_renewal`` / ``verify_notification``:
  watch channels.
"""

from journeyhub_gcal.config import GcalConfig, GcalCredentials
from journeyhub_gcal.oauth import authenticate, refresh_access_token
from journeyhub_gcal.pull import Cursor, event_record, list_events_page
from journeyhub_gcal.watch import needs_renewal, renew_watch, start_watch, stop_watch
from journeyhub_gcal.watch import verify as verify_notification

__all__ = [
    "Cursor",
    "GcalConfig",
    "GcalCredentials",
    "authenticate",
    "event_record",
    "list_events_page",
    "needs_renewal",
    "refresh_access_token",
    "renew_watch",
    "start_watch",
    "stop_watch",
    "verify_notification",
]
