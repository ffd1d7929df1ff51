"""The demo's HTTP side: a small JSON client for the API and a signing webhook sender.

Everything goes over real HTTP to the running API, exactly as a provider or a finance
tool would send it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import click

from cli.demo_data import Event
from shared.providers.registry import provider_named

TIMEOUT_SECONDS = 30


def _request(request: urllib.request.Request) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@dataclass(frozen=True)
class ApiClient:
    """Bearer-authenticated JSON requests to the API; any answer >= 400 is a ClickException."""

    base_url: str
    key: str

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """Send one request (with any further ``headers``); return the status and the raw
        body (errors raise)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - our own http://127.0.0.1 URL
            self.base_url + path, data=data, method=method, headers=headers or {}
        )
        request.add_header("Authorization", f"Bearer {self.key}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        status, raw = _request(request)
        if status >= 400:
            detail = raw.decode(errors="replace")[:500]
            raise click.ClickException(f"{method} {path} answered {status}: {detail}")
        return status, raw

    def json(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        """Send one request and decode its JSON answer."""
        return json.loads(self.call(method, path, body, headers)[1])

    def text(self, path: str) -> str:
        """GET ``path`` and return the body as text."""
        return self.call("GET", path)[1].decode()


def signed_webhook(event: Event, secret: str, now: int) -> tuple[bytes, dict[str, str]]:
    """The body and headers the provider would send for ``event``, signed at ``now``."""
    return provider_named(event.provider).sign(event.payload, secret, now=now)


@dataclass(frozen=True)
class WebhookSender:
    """Signs events with each provider account's secret and posts them to its URL."""

    base_url: str
    urls: dict[str, str]  # provider -> webhook path
    secrets: dict[str, str]  # provider -> signing secret

    def send(self, event: Event) -> int:
        """Post one signed event; return the HTTP status."""
        body, headers = signed_webhook(event, self.secrets[event.provider], int(time.time()))
        request = urllib.request.Request(  # noqa: S310 - our own http://127.0.0.1 URL
            self.base_url + self.urls[event.provider], data=body, method="POST"
        )
        request.add_header("Content-Type", "application/json")
        for name, value in headers.items():
            request.add_header(name, value)
        return _request(request)[0]

    def send_sequence(self, events: list[Event]) -> list[int]:
        """Post one payment's events in order (a provider sends them one after another)."""
        return [self.send(event) for event in events]
