"""Real receivers for the notify tests: an SMTP server, an HTTP server, and a clock the test turns.

The SMTP server is aiosmtpd, the HTTP server the standard library's; both listen on
free ports in threads, so apprise and httpx talk to them over real sockets.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from firewatch.services import free_port


class Clock:
    """The platform clock, moved only by the test."""

    def __init__(self, start_ms: int | None = None) -> None:
        self.now = start_ms if start_ms is not None else int(time.time() * 1000)

    def __call__(self) -> int:
        return self.now

    def advance(self, minutes: float = 0, seconds: float = 0) -> None:
        self.now += int(minutes * 60_000 + seconds * 1000)


class SmtpInbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        self.messages.append(email.message_from_bytes(raw, policy=email.policy.default))  # type: ignore[arg-type]
        return "250 OK"

    def url(self, to: str) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=firewatch@example.org&to={to}&mode=insecure"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in str(m["To"])]


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpSink:
    """Records every POST; `status`, `fail_first` (503 for the first N) and `hang` per path prefix make it
    fail or stall on purpose."""

    requests: list[Request] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    fail_first: dict[str, int] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _release: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if any(self.path.startswith(p) for p in sink.hang):
                    sink._release.wait(30)
                sink.requests.append(Request(self.path, dict(self.headers), body))
                code = next((c for p, c in sink.status.items() if self.path.startswith(p)), 200)
                for p, n in sink.fail_first.items():
                    if self.path.startswith(p) and len(sink.at(p)) <= n:
                        code = 503
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"id":"x"}')

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def release(self) -> None:
        """Let the requests held by `hang` through (and every later one)."""
        self._release.set()

    def stop(self) -> None:
        self._release.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def at(self, prefix: str) -> list[Request]:
        return [r for r in self.requests if r.path.startswith(prefix)]


ALERT_DEFAULTS: dict[str, Any] = {
    "rule": "panel_fire", "severity": "fire", "state": "firing", "kind": "panel", "device_id": "P1",
    "district": "510104", "site": "万达广场", "zone": "3F east", "summary": "火灾报警 3F east",
}


async def add_alert(store: Any, started_ms: int, **fields: Any) -> Any:
    """Store an alert as the lifecycle would, and return the snapshot it would emit."""
    from firewatch.alerting.changes import snapshot
    from firewatch.contract.db import Alert

    values = ALERT_DEFAULTS | fields
    values.setdefault("fingerprint", f"{values['device_id']}:{values['rule']}")
    async with store.session() as s, s.begin():
        alert = Alert(started_ms=started_ms, last_seen_ms=started_ms, **values)
        s.add(alert)
        await s.flush()
        return snapshot(alert)


async def audit_changes(store: Any, action: str, alerts: list[Any]) -> None:
    """The audit rows the lifecycle writes with its changes: what a notify stage follows."""
    async with store.session() as s, s.begin():
        for alert in alerts:
            await store.audit(s, "alerting", action, f"alert:{alert.id}")


async def set_state(store: Any, alert_id: int, state: str, at_ms: int, by: str = "") -> Any:
    from firewatch.alerting.changes import snapshot
    from firewatch.contract.db import Alert

    async with store.session() as s, s.begin():
        alert = await s.get(Alert, alert_id)
        alert.state = state
        if state == "resolved":
            alert.resolved_ms = at_ms
        if state == "acknowledged":
            alert.acknowledged_ms, alert.acknowledged_by = at_ms, by
        await s.flush()
        return snapshot(alert)


def ntfy_posts(sink: HttpSink, topic: str) -> list[Request]:
    """ntfy publishes as JSON to the server root with the topic in the body."""
    import json

    out = []
    for r in sink.at("/"):
        try:
            if r.path == "/" and json.loads(r.body).get("topic") == topic:
                out.append(r)
        except ValueError:
            continue
    return out
