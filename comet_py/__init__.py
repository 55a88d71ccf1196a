"""comet_py: the comet-server (CppComet) JavaScript API as a Python library for the browser.

    from comet_py import cometApi
    cometApi.start({"dev_id": 15, "node": "127.0.0.1:8087"})
    cometApi.subscription("web_chat", lambda e: print(e.data))

One tab per browser holds the connection; the others share it (see ``isMaster()``).
"""

from .api import AttrDict, CometApi
from .errors import CometError, ConnectionLost, NotStartedError, OptionsError, RequestTimeout
from .message import Message, ServerInfo
from .options import Options

__all__ = [
    "AttrDict", "CometApi", "CometError", "ConnectionLost", "Message", "NotStartedError",
    "Options", "OptionsError", "RequestTimeout", "ServerInfo", "cometApi",
]
__version__ = "0.1.0"

cometApi = CometApi()
"""The page's ready instance, like the JS global ``cometApi``."""
