"""A stand-in for the Slack Web API over real HTTP: records calls, answers like Slack.

Point the bot's SLACK_API_URL at `{url}/api/`. It fails as Slack (and proxies in front of
it) do, per method, for a number of calls or until healed: any error string, HTTP 429 with
Retry-After, 5xx with an HTML page, a 200 that is not JSON, slow answers (SlackFault); and
per channel (`not_in_channel`). Messages and modals over Slack's limits are refused as Slack
does, and a method can be delayed to see how many calls overlap. It keeps what
a Slack client shows: messages and threads, each user's ephemeral messages and modals,
so that `slack_client.SlackClientApi` can serve them to the sandbox page.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from bot.slack.limits import message_problems, view_problems


@dataclass(frozen=True)
class SlackFault:
    """One answer Slack, or a proxy in front of it, gives instead of the normal one."""

    status: int = 200
    body: dict[str, Any] | str | None = None  # str: sent as is; None: the normal answer
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    delay_seconds: float = 0.0  # before answering

    @classmethod
    def error(cls, error: str) -> SlackFault:
        """Slack's own refusal: HTTP 200, ok false, the error string."""
        return cls(200, {"ok": False, "error": error})

    @classmethod
    def rate_limited(cls, retry_after: int = 1) -> SlackFault:
        return cls(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})

    @classmethod
    def proxy_page(cls, status: int, content_type: str = "text/html") -> SlackFault:
        """A load balancer's HTML page (502 Bad Gateway, 503, …) or a 200 that is not JSON."""
        page = f"<html><head><title>{status}</title></head><body>upstream error</body></html>"
        return cls(status, page, content_type=content_type)

    @classmethod
    def slow(cls, seconds: float) -> SlackFault:
        return cls(delay_seconds=seconds)


@dataclass
class Call:
    method: str
    args: dict[str, Any]


BOT_USER = "U0BOT"
# Methods whose effect a person sees; each one moves SlackState.version on.
_VISIBLE = {"chat.postMessage", "chat.update", "chat.postEphemeral", "views.open",
            "views.update", "views.push"}  # fmt: skip
_MESSAGE_METHODS = {"chat.postMessage", "chat.update", "chat.postEphemeral"}
_VIEW_METHODS = {"views.open", "views.update", "views.push"}


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str
    author: str = BOT_USER


@dataclass
class Ephemeral:
    """Seen only by `user`: chat.postEphemeral, a response_url reply, an ack's text."""

    channel: str
    user: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str = ""
    author: str = BOT_USER


@dataclass
class Origin:
    """Who a trigger_id or response_url was issued to, and where."""

    user: str
    channel: str = ""
    thread_ts: str = ""


@dataclass
class SlackState:
    calls: list[Call] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    responses: list[dict[str, Any]] = field(default_factory=list)  # posts to response_url
    ephemerals: list[Ephemeral] = field(default_factory=list)
    # Issued by SlackClientApi; ids the tests make up are simply not found here.
    triggers: dict[str, Origin] = field(default_factory=dict)
    response_urls: dict[str, Origin] = field(default_factory=dict)
    modal_stacks: dict[str, list[str]] = field(default_factory=dict)  # user -> open view ids
    authors: dict[str, str] = field(default_factory=dict)  # token -> user posting with it
    version: int = 0
    # Socket Mode: envelopes to send to a connected app, and what it sent back
    socket_outbox: deque[dict[str, Any]] = field(default_factory=deque)
    socket_received: list[dict[str, Any]] = field(default_factory=list)
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    # channel -> Slack error that chat.postMessage answers there (e.g. "not_in_channel")
    closed_channels: dict[str, str] = field(default_factory=dict)
    # Calls Slack would refuse for breaking its limits: (method, error, reasons)
    refused: list[tuple[str, str, list[str]]] = field(default_factory=list)
    # method -> seconds to wait before answering it, and how many calls were in flight at once
    delays: dict[str, float] = field(default_factory=dict)
    most_in_flight: dict[str, int] = field(default_factory=dict)
    # method -> answers to give, one per call, before normal ones
    scripted: dict[str, deque[SlackFault]] = field(default_factory=dict)
    # method -> the answer to every call until healed
    faults: dict[str, SlackFault] = field(default_factory=dict)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def script(
        self, method: str, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        self.fail(method, SlackFault(status, body, headers or {}), times=1)

    def fail(self, method: str, fault: SlackFault, times: int | None = None) -> None:
        """Answer the next `times` calls of `method` so; every call when times is None."""
        if times is None:
            self.faults[method] = fault
        else:
            self.scripted.setdefault(method, deque()).extend([fault] * times)

    def heal(self, method: str | None = None) -> None:
        """Answer normally again: `method`, or every method."""
        for table in (self.faults, self.scripted):
            if method is None:
                table.clear()
            else:
                table.pop(method, None)

    def next_fault(self, method: str) -> SlackFault | None:
        queued = self.scripted.get(method)
        return queued.popleft() if queued else self.faults.get(method)

    def thread(self, channel: str, ts: str) -> list[Message]:
        return [m for m in self.messages if m.channel == channel and ts in (m.ts, m.thread_ts)]

    def changed(self) -> None:
        self.version += 1

    def post(self, message: Message) -> Message:
        self.messages.append(message)
        self.changed()
        return message

    def post_ephemeral(self, ephemeral: Ephemeral) -> None:
        self.ephemerals.append(ephemeral)
        self.changed()


class SlackStandIn:
    def __init__(self) -> None:
        self.state = SlackState()
        self._ids = itertools.count(1)
        self._in_flight_now: dict[str, int] = {}
        # Where chat.getPermalink points: Slack's archives, or a page that shows the thread
        # itself at `#thread=CHANNEL/TS` (the sandbox's).
        self.permalink_page = ""

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
        body = await request.json()
        error, reasons = message_problems(body.get("text"), body.get("blocks"))
        if error and not body.get("delete_original"):
            self.state.refused.append(("response_url", error, reasons))
            return web.json_response({"ok": False, "error": error}, status=400)
        self.state.responses.append(body)
        origin = self.state.response_urls.get(request.match_info["id"])
        if origin is not None:
            self.show_reply(origin, body)
        return web.Response(text="ok")

    def show_reply(self, origin: Origin, body: dict[str, Any]) -> None:
        """A reply to a person, as Slack shows it: ephemeral unless it says in_channel."""
        text, blocks = str(body.get("text", "")), list(body.get("blocks") or [])
        if body.get("response_type") == "in_channel":
            self.state.post(Message(origin.channel, self.next_ts(), text, blocks,
                                    origin.thread_ts))  # fmt: skip
        else:
            self.state.post_ephemeral(Ephemeral(origin.channel, origin.user, self.next_ts(),
                                                text, blocks, origin.thread_ts))  # fmt: skip

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = dict(request.query)
        if request.can_read_body:
            raw = await request.read()
            if request.content_type == "application/json":
                args.update(json.loads(raw or b"{}"))
            else:
                args.update(parse_qsl(raw.decode()))
        state = self.state
        fault = state.next_fault(method)
        if fault is not None and fault.delay_seconds:
            await asyncio.sleep(fault.delay_seconds)
        if fault is not None and fault.body is not None:
            state.calls.append(Call(method, args))
            if isinstance(fault.body, str):
                return web.Response(status=fault.status, text=fault.body, headers=fault.headers,
                                    content_type=fault.content_type)  # fmt: skip
            return web.json_response(fault.body, status=fault.status, headers=fault.headers)
        async with self._in_flight(method):
            status, body, headers = self._answer(method, args)
        if method == "apps.connections.open":
            body = {"ok": True, "url": f"ws://{request.host}/socket"}
        if method == "chat.postMessage" and body.get("ok"):
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            self.state.messages[-1].author = self.state.authors.get(token, BOT_USER)
        if method in _VISIBLE and body.get("ok"):
            self.state.changed()
        # Recorded once answered, so a test that sees the call also sees its effect.
        self.state.calls.append(Call(method, args))
        return web.json_response(body, status=status, headers=headers)

    def _answer(
        self, method: str, args: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        refused = self._over_limits(method, args)
        if refused is not None:
            return 200, refused, {}
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        return 200, handler(args), {}

    @contextlib.asynccontextmanager
    async def _in_flight(self, method: str) -> AsyncIterator[None]:
        """Answer after the method's set delay, counting the calls that overlap meanwhile."""
        in_flight = self._in_flight_now.get(method, 0) + 1
        self._in_flight_now[method] = in_flight
        most = self.state.most_in_flight
        most[method] = max(most.get(method, 0), in_flight)
        try:
            await asyncio.sleep(self.state.delays.get(method, 0.0))
            yield
        finally:
            self._in_flight_now[method] -= 1

    def _over_limits(self, method: str, args: dict[str, Any]) -> dict[str, Any] | None:
        """Slack's answer to a message or modal over its limits; None when within them."""
        if method in _MESSAGE_METHODS:
            error, reasons = message_problems(args.get("text"), _blocks(args))
        elif method in _VIEW_METHODS:
            view = args.get("view")
            reasons = view_problems(json.loads(view) if isinstance(view, str) else view)
            error = "invalid_arguments" if reasons else ""
        else:
            return None
        if not error:
            return None
        self.state.refused.append((method, error, reasons))
        return {"ok": False, "error": error, "response_metadata": {"messages": reasons}}

    def next_ts(self) -> str:
        return f"{time.time():.0f}.{next(self._ids):06d}"

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "team_id": "T0000TEST", "user_id": "U0BOT", "bot_id": "B0BOT"}

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if channel in self.state.closed_channels:
            return {"ok": False, "error": self.state.closed_channels[channel]}
        if channel.startswith("U"):
            channel = "D" + channel[1:]  # a user ID posts to the app's DM with that user
        message = Message(
            channel,
            self.next_ts(),
            str(args.get("text", "")),
            _blocks(args),
            str(args.get("thread_ts") or ""),
        )
        self.state.messages.append(message)
        return {"ok": True, "channel": channel, "ts": message.ts}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        for message in self.state.messages:
            if message.channel == args.get("channel") and message.ts == args.get("ts"):
                if message.author != BOT_USER:  # a bot edits only its own messages
                    return {"ok": False, "error": "cant_update_message"}
                message.text = str(args.get("text", ""))
                message.blocks = _blocks(args)
                return {"ok": True, "channel": message.channel, "ts": message.ts}
        return {"ok": False, "error": "message_not_found"}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        ephemeral = Ephemeral(str(args.get("channel", "")), str(args.get("user", "")),
                              self.next_ts(), str(args.get("text", "")), _blocks(args),
                              str(args.get("thread_ts") or ""))  # fmt: skip
        self.state.ephemerals.append(ephemeral)
        return {"ok": True, "message_ts": ephemeral.ts}

    def _chat_getPermalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel", "")), str(args.get("message_ts", ""))
        if self.permalink_page:
            return {"ok": True, "channel": channel,
                    "permalink": f"{self.permalink_page}#thread={channel}/{ts}"}  # fmt: skip
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"https://example.slack.com/archives/{channel}/p{ts.replace('.', '')}",
        }

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        view_id = f"V{next(self._ids):08d}"
        origin = self.state.triggers.pop(str(args["trigger_id"]), None)
        if origin is not None:  # a modal replaces whatever that person had open
            self.state.modal_stacks[origin.user] = [view_id]
        return {"ok": True, "view": self.store_view(view_id, args.get("view"))}

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view_id = str(args.get("view_id", ""))
        current = self.state.views.get(view_id)
        if current is None:
            return {"ok": False, "error": "not_found"}
        if args.get("hash") and args["hash"] != current["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        return {"ok": True, "view": self.store_view(view_id, args.get("view"))}

    def store_view(self, view_id: str, view: Any) -> dict[str, Any]:
        content = json.loads(view) if isinstance(view, str) else dict(view or {})
        stored = {**content, "id": view_id, "hash": f"h{next(self._ids)}"}
        self.state.views[view_id] = stored
        return stored

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = str(args.get("usergroup", ""))
        if group not in self.state.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": self.state.usergroups[group]}


def _blocks(args: dict[str, Any]) -> list[dict[str, Any]]:
    """Block Kit arrives as a JSON string in form posts and as a list in JSON posts."""
    blocks = args.get("blocks") or []
    return list(json.loads(blocks) if isinstance(blocks, str) else blocks)
