"""A stand-in for the Slack Web API over real HTTP: records calls, answers like Slack.

Point the bot's SLACK_API_URL at `{url}/api/`. Answers can be scripted per method
(errors, HTTP 429 with Retry-After, 5xx) and per channel (`not_in_channel`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web


@dataclass
class Call:
    method: str
    args: dict[str, Any]


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str


@dataclass
class SlackState:
    calls: list[Call] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    responses: list[dict[str, Any]] = field(default_factory=list)  # posts to response_url
    # Socket Mode: envelopes to send to a connected app, and what it sent back
    socket_outbox: deque[dict[str, Any]] = field(default_factory=deque)
    socket_received: list[dict[str, Any]] = field(default_factory=list)
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    # channel -> Slack error that chat.postMessage answers there (e.g. "not_in_channel")
    closed_channels: dict[str, str] = field(default_factory=dict)
    # method -> queued (HTTP status, body, headers) answers to give before normal ones
    scripted: dict[str, deque[tuple[int, dict[str, Any], dict[str, str]]]] = field(
        default_factory=dict
    )

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def script(
        self, method: str, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        self.scripted.setdefault(method, deque()).append((status, body, headers or {}))

    def thread(self, channel: str, ts: str) -> list[Message]:
        return [m for m in self.messages if m.channel == channel and ts in (m.ts, m.thread_ts)]


class SlackStandIn:
    def __init__(self) -> None:
        self.state = SlackState()
        self._ids = itertools.count(1)

    def reset(self) -> None:
        self.state = SlackState()

    async def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/response/{id}", self._response_url)
        app.router.add_get("/socket", self._socket)
        return app

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        """Socket Mode's websocket: hello, then queued envelopes; replies are recorded."""
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_json({"type": "hello", "num_connections": 1})

        async def send_queued() -> None:
            while not socket.closed:
                while self.state.socket_outbox:
                    await socket.send_json(self.state.socket_outbox.popleft())
                await asyncio.sleep(0.02)

        sender = asyncio.create_task(send_queued())
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    self.state.socket_received.append(json.loads(message.data))
        finally:
            sender.cancel()
        return socket

    async def _response_url(self, request: web.Request) -> web.Response:
        self.state.responses.append(await request.json())
        return web.Response(text="ok")

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = dict(request.query)
        if request.can_read_body:
            raw = await request.read()
            if request.content_type == "application/json":
                args.update(json.loads(raw or b"{}"))
            else:
                args.update(parse_qsl(raw.decode()))
        status, body, headers = self._answer(method, args)
        if method == "apps.connections.open":
            body = {"ok": True, "url": f"ws://{request.host}/socket"}
        # Recorded once answered, so a test that sees the call also sees its effect.
        self.state.calls.append(Call(method, args))
        return web.json_response(body, status=status, headers=headers)

    def _answer(
        self, method: str, args: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        queued = self.state.scripted.get(method)
        if queued:
            return queued.popleft()
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        return 200, handler(args), {}

    def _next_ts(self) -> str:
        return f"{time.time():.0f}.{next(self._ids):06d}"

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "team_id": "T0000TEST", "user_id": "U0BOT", "bot_id": "B0BOT"}

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if channel in self.state.closed_channels:
            return {"ok": False, "error": self.state.closed_channels[channel]}
        if channel.startswith("U"):
            channel = "D" + channel[1:]  # a user ID posts to the app's DM with that user
        blocks = args.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        message = Message(
            channel,
            self._next_ts(),
            str(args.get("text", "")),
            blocks,
            str(args.get("thread_ts") or ""),
        )
        self.state.messages.append(message)
        return {"ok": True, "channel": channel, "ts": message.ts}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        for message in self.state.messages:
            if message.channel == args.get("channel") and message.ts == args.get("ts"):
                message.text = str(args.get("text", ""))
                message.blocks = args.get("blocks") or []
                return {"ok": True, "channel": message.channel, "ts": message.ts}
        return {"ok": False, "error": "message_not_found"}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message_ts": self._next_ts()}

    def _chat_getPermalink(self, args: dict[str, Any]) -> dict[str, Any]:
        ts = str(args.get("message_ts", "")).replace(".", "")
        return {
            "ok": True,
            "permalink": f"https://example.slack.com/archives/{args.get('channel')}/p{ts}",
        }

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        view_id = f"V{next(self._ids):08d}"
        return {"ok": True, "view": self._store_view(view_id, args.get("view"))}

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view_id = str(args.get("view_id", ""))
        current = self.state.views.get(view_id)
        if current is None:
            return {"ok": False, "error": "not_found"}
        if args.get("hash") and args["hash"] != current["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        return {"ok": True, "view": self._store_view(view_id, args.get("view"))}

    def _store_view(self, view_id: str, view: Any) -> dict[str, Any]:
        content = json.loads(view) if isinstance(view, str) else dict(view or {})
        stored = {**content, "id": view_id, "hash": f"h{next(self._ids)}"}
        self.state.views[view_id] = stored
        return stored

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = str(args.get("usergroup", ""))
        if group not in self.state.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": self.state.usergroups[group]}
