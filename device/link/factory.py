"""The link of the configured API: `link_for(settings)` is the LinkFactory the agent gets.

realtime.api = "realtime" → client.RealtimeClient (one persistent WebSocket);
"live" → live_client.LiveClient (a WebSocket per conversation). The URL defaults per API
(config.endpoint); the API key is sent as a Bearer token and never logged.
"""

from __future__ import annotations

from device.config import Settings, endpoint
from device.link.base import LinkFactory
from device.link.client import realtime_link
from device.link.live_client import live_link


def link_for(settings: Settings, url: str | None = None, api_key: str | None = None) -> LinkFactory:
    target = url or endpoint(settings.realtime)[0]
    if settings.realtime.api == "live":
        return live_link(settings, target, api_key)
    return realtime_link(settings, target, api_key)
