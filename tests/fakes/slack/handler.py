"""The HTTP side of the fake Slack Web API: the server and the request handler (parsing query,
JSON, form and multipart bodies; auth, delays, faults, rate limits and channel pacing;
recording), the upload URLs and the response URLs."""

from __future__ import annotations

import copy
import json
import re
import sys
import time
from collections.abc import Mapping
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.slack import files as _files  # noqa: F401 - registers the files.* methods
from tests.fakes.slack.methods import call
from tests.fakes.slack.model import Ephemeral, Message, RecordedCall, decode_params
from tests.fakes.slack.socket_mode import APP_TOKEN_METHODS

if TYPE_CHECKING:
    from tests.fakes.slack.store import FakeSlackApi

_API = re.compile(r"/api/([A-Za-z][\w.]*)")
_UPLOAD = re.compile(r"/upload/(\w+)")
_RESPONSE = re.compile(r"/response/(\w+)")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout test) closes its socket before the reply: not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _first(values: Mapping[str, list[str]]) -> dict[str, Any]:
    return {k: v[0] for k, v in values.items() if v}


def parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    """The parameters of a request body as slack_sdk sends them: JSON, form-encoded, or
    multipart (file parts as bytes)."""
    if not raw.strip():
        return {}
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        body = json.loads(raw)
        return dict(body) if isinstance(body, dict) else {}
    if kind == "multipart/form-data":
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw
        )
        out: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if name is None or not isinstance(payload, bytes):
                continue
            out[str(name)] = payload if part.get_filename() else payload.decode()
        return out
    return _first(parse_qs(raw.decode(), keep_blank_values=True))


def _route(path: str) -> tuple[str, str] | None:
    """``("api", method)``, ``("upload", file_id)``, ``("response_url", id)`` or None."""
    for pattern, kind in ((_API, "api"), (_UPLOAD, "upload"), (_RESPONSE, "response_url")):
        match = pattern.fullmatch(path)
        if match is not None:
            return kind, match.group(1)
    return None


class _Handler(BaseHTTPRequestHandler):
    api: FakeSlackApi
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _send(
        self, status: int, body: Any, headers: Mapping[str, str] | None = None, text: bool = False
    ) -> None:
        data = str(body).encode() if text else json.dumps(body).encode()
        self.send_response(status)
        kind = "text/plain" if text else "application/json"
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-slack-req-id", f"fake-{time.monotonic_ns()}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        api = self.api
        at = time.time()
        split = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
        route = _route(split.path)
        if route is None:
            self._send(404, "not found", text=True)
            return
        kind, target = route
        name = target if kind == "api" else kind
        reply: tuple[int, Any, dict[str, str]] | None = None
        try:
            params = _first(parse_qs(split.query, keep_blank_values=True))
            if kind == "upload":
                params.update({"file_id": target, "length": len(raw)})
            else:
                params.update(parse_body(self.headers.get("Content-Type") or "", raw))
            params = decode_params(params)
        except ValueError:
            params, reply = {}, (200, {"ok": False, "error": "invalid_json"}, {})
        pause = api._delay_for(name)
        if pause:
            time.sleep(pause)
        with api._lock:
            if reply is None:
                reply = self._answer(name, kind, target, params, raw)
            status, body, extra = reply
            recorded = {k: v for k, v in params.items() if k != "token"}
            api.requests.append(
                RecordedCall(name, recorded, headers, at, status, copy.deepcopy(body))
            )
        if status == 0:  # a dropped connection: no answer at all
            self.close_connection = True
            return
        late = api._delay_for(name, late=True)
        if late:
            time.sleep(late)
        self._send(status, body, extra, text=isinstance(body, str))

    def _answer(
        self, name: str, kind: str, target: str, params: dict[str, Any], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        """Faults first, then auth and pacing, then the method itself (lock held)."""
        api = self.api
        fault = api._take_fault(name)
        if fault is not None:
            if fault.kind == "drop":
                return 0, None, {}
            if fault.kind == "ratelimit":
                body = {"ok": False, "error": "ratelimited"}
                return 429, body, {"Retry-After": str(fault.retry_after)}
            return fault.status, {"ok": False, "error": fault.error}, {}
        if kind == "upload":
            upload = api.files.get(target)
            if upload is None or upload.completed:
                return 404, "file not found", {}
            upload.content = raw
            return 200, f"OK - {len(raw)}", {}
        if kind == "response_url":
            return self._respond(target, params)
        token = params.pop("token", None)
        bearer = self.headers.get("Authorization") or ""
        if not token and bearer.startswith("Bearer "):
            token = bearer.removeprefix("Bearer ").strip()
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if name in APP_TOKEN_METHODS:  # the app-level token (xapp-…) and only it
            if token != api.app_token:
                error = "not_allowed_token_type" if token in api.valid_tokens else "invalid_auth"
                return 200, {"ok": False, "error": error}, {}
        elif token not in api.valid_tokens:
            error = "not_allowed_token_type" if token == api.app_token else "invalid_auth"
            return 200, {"ok": False, "error": error}, {}
        if name == "chat.postMessage":
            wait = api._pacing_wait(str(params.get("channel") or ""))
            if wait:
                body = {"ok": False, "error": "ratelimited"}
                return 429, body, {"Retry-After": str(wait)}
        status, body = call(api, name, params)
        return status, body, {}

    def _respond(self, target: str, params: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        """A POST to a response URL: replace or delete the message it belongs to, post in the
        channel (``response_type: in_channel``) or answer the user ephemerally."""
        api = self.api
        hook = api.response_urls.get(target)
        if hook is None:
            return 404, "no_service", {}
        hook.posts.append(copy.deepcopy(params))
        truthy = (True, "true", "1")
        original = (
            api._messages.get((hook.channel, hook.message_ts))
            if hook.channel and hook.message_ts
            else None
        )
        if params.get("delete_original") in truthy:
            if original is not None:
                original.deleted = True
            return 200, "ok", {}
        blocks = params.get("blocks")
        text = params.get("text")
        if params.get("replace_original") in truthy and original is not None:
            original.history.append({"text": original.text, "blocks": original.blocks})
            original.text = None if text is None else str(text)
            original.blocks = blocks
            original.edited_ts = api._next_ts()
            return 200, "ok", {}
        if hook.channel is None:
            return 200, "ok", {}
        thread_ts = params.get("thread_ts")
        if params.get("response_type") == "in_channel":
            message = Message(hook.channel, api._next_ts(), text, blocks, thread_ts=thread_ts)
            message.user = api.bot_user_id
            api._messages[(hook.channel, message.ts)] = message
        else:
            api._ephemerals.append(
                Ephemeral(hook.channel, hook.user or "", text, blocks, thread_ts, api._next_ts())
            )
        return 200, "ok", {}
