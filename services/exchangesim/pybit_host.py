"""Point the unmodified pybit client at another Bybit-compatible host (e.g. this simulator).

The only place that knows how: HTTP sessions take `endpoint` after construction, WebSockets read
the module's URL templates inside their constructor, so the templates are set before that.
"""

from __future__ import annotations

from typing import Any

from pybit import unified_trading


def point_pybit_at(http_base: str, session: Any = None) -> None:
    """Aim pybit at `http_base` ("http://host:port"); set `session.endpoint` if a session is given.

    WebSockets created after this call use ws(s)://host:port/v5/{public/<category>,private}.
    """
    base = http_base.rstrip("/")
    ws_base = (
        "wss://" + base[len("https://") :]
        if base.startswith("https://")
        else "ws://" + base.split("://", 1)[-1]
    )
    unified_trading.PUBLIC_WSS = ws_base + "/v5/public/{CHANNEL_TYPE}"
    unified_trading.PRIVATE_WSS = ws_base + "/v5/private"
    if session is not None:
        session.endpoint = base
