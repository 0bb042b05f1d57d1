"""JSON over HTTP to one inference server, with the standard library only.

Shared by the server backends' clients: it opens connections and sends requests, and turns a
transport failure into the client's own "unreachable" BackendError, naming the server and the URL.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping
from typing import Any

from benchbench.errors import BackendError


class JsonHttp:
    def __init__(
        self,
        label: str,
        url: str,
        host: str,
        port: int | None,
        timeout_s: float,
        unreachable: type[BackendError],
        https: bool = False,
        prefix: str = "",
        headers: Mapping[str, str] | None = None,
    ):
        self.label, self.url, self.timeout_s = label, url, timeout_s
        self._host, self._port, self._https, self._prefix = host, port, https, prefix
        self._unreachable = unreachable
        self._headers = dict(headers or {})

    def connection(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return kind(self._host, self._port, timeout=self.timeout_s)

    def send(
        self, connection: http.client.HTTPConnection, method: str, path: str, body: dict[str, Any] | None
    ) -> http.client.HTTPResponse:
        """Send one request on ``connection`` and return the response, its body still unread."""
        payload = None if body is None else json.dumps(body).encode("utf-8")
        headers = {**self._headers, **({"Content-Type": "application/json"} if payload is not None else {})}
        try:
            connection.request(method, self._prefix + path, body=payload, headers=headers)
            return connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(
                f"cannot reach {self.label} {self.url}{path} ({exc!r}); start it or check the url"
            ) from None

    def exchange(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, bytes]:
        """One request on a fresh connection: (HTTP status, whole body)."""
        connection = self.connection()
        try:
            response = self.send(connection, method, path, body)
            try:
                return response.status, response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise self._unreachable(f"{self.label} {self.url}{path}: answer cut off ({exc!r})") from None
        finally:
            connection.close()

    def read_line(self, response: http.client.HTTPResponse, max_bytes: int, tokens_so_far: int) -> bytes:
        """One line of a streamed answer, b"" once the body has ended; a stall past the timeout or a
        broken connection raises, naming how far the stream had come."""
        try:
            return response.readline(max_bytes)
        except TimeoutError:
            raise BackendError(
                f"{self.label} {self.url}: no stream data for {self.timeout_s:g} s after {tokens_so_far} token(s); "
                "raise the request timeout or check the server"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(
                f"{self.label} {self.url}: stream ended after {tokens_so_far} token(s) without finishing ({exc!r}); "
                "the server may have crashed"
            ) from None
