"""`python -m services.dashboard`: run the clients' Streamlit app.

Settings are checked here, before Streamlit starts, so a bad variable stops the dashboard at once
with a message naming it. Streamlit's own `/_stcore/health` endpoint is the HTTP health check.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from services.common.settings import load_settings
from services.dashboard.settings import Settings

settings = load_settings(Settings, "dashboard")
app = Path(__file__).resolve().parent / "app.py"
streamlit = Path(sys.executable).parent / "streamlit"
os.execv(
    str(streamlit),
    [
        str(streamlit),
        "run",
        str(app),
        "--server.address",
        settings.dashboard_host,
        "--server.port",
        str(settings.dashboard_port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        # Clients get no developer menu and no "Deploy" button.
        "--client.toolbarMode",
        "minimal",
        # A page that fails unexpectedly shows Streamlit's generic sentence, never a traceback (which
        # goes to the log); the platform's own errors are sentences already (client.PlatformError).
        "--client.showErrorDetails",
        "none",
    ],
)
