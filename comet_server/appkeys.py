"""Where the aiohttp Application keeps comet_server's objects: kept apart so that the Hub and
Store implementations never import aiohttp."""

from __future__ import annotations

from aiohttp import web

from .seams import HubAPI

__all__ = ["HUB_KEY"]

#: the running Hub (``hub.Hub`` or ``redis_hub.RedisHub``): ``app[HUB_KEY]``.
HUB_KEY: "web.AppKey[HubAPI]" = web.AppKey("comet_hub", HubAPI)
