"""Server URLs in backend options: checked when the scenario is read, and reachable before a run starts.

A URL that cannot work (``ftp://``, port 99999, nothing listening) is an input error: it must end
the command with one line before any worker starts, not as a failed backend in a full report.
"""

from __future__ import annotations

import socket
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator

from benchbench.errors import BackendError

PREFLIGHT_TIMEOUT_S = 5.0


def _valid_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not a server URL; give it as http://HOST:PORT")
    try:
        parts.port  # noqa: B018 -- urlsplit checks the port only when asked
    except ValueError:
        raise ValueError(f"{url!r}: the port must be a number from 1 to 65535") from None
    if parts.port == 0:
        raise ValueError(f"{url!r}: the port must be a number from 1 to 65535")
    return url


ServerUrl = Annotated[str, AfterValidator(_valid_url)]


def check_reachable(url: str, backend: str, timeout_s: float = PREFLIGHT_TIMEOUT_S) -> None:
    """Open (and close) one TCP connection to the server, so a wrong URL fails before the run."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout_s).close()
    except OSError as exc:
        reason = exc.strerror or ("timed out" if isinstance(exc, TimeoutError) else type(exc).__name__)
        raise BackendError(f"backend '{backend}': cannot reach {url} ({reason}); start the server or fix the url") from None
