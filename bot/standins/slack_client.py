"""Slack's side of what a person does in a Slack client, for the sandbox page.

Each route is one thing a person does: type a command, press a button, pick a message
shortcut, submit or close a modal. It becomes the signed request Slack sends to the app's
Request URL, and the app's acknowledgement is applied as Slack applies it: a command's
reply shown only to its author, a modal updated, closed or given errors. The page reads
what its person sees from `GET /client/state`, which waits for a change (a long poll).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from aiohttp import web

from bot.standins import slack_payloads
from bot.standins.slack_api import Ephemeral, Message, Origin, SlackStandIn

SLACKBOT = "USLACKBOT"
ACK_TIMEOUT_SECONDS = 3.0  # Slack's own limit for an app's acknowledgement
LONG_POLL_SECONDS = 20.0


class BadRequest(Exception):
    """What the page sent does not name a user, channel, message or modal it can use."""


@dataclass(frozen=True)
class Ack:
    status: int
    body: bytes
    content_type: str

    def json(self) -> dict[str, Any]:
        if self.content_type != "application/json" or not self.body:
            return {}
        value = json.loads(self.body)
        return value if isinstance(value, dict) else {}


class SlackClientApi:
    def __init__(
        self,
        standin: SlackStandIn,
        request_url: str,
        signing_secret: str,
        channels: Mapping[str, str],
        users: Mapping[str, str],
    ) -> None:
        self._standin = standin
        self._request_url = request_url
        self._secret = signing_secret
        self._channels = channels  # id -> name
        self._users = users  # id -> display name
        self._ids = itertools.count(1)
        self._http: aiohttp.ClientSession | None = None
        self._stopping = False

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/client/state", self._state)
        for route, handler in (
            ("message", self._message_from_person),
            ("command", self._command),
            ("shortcut", self._shortcut),
            ("action", self._action),
            ("submit", self._submit),
            ("close", self._close),
        ):
            app.router.add_post(f"/client/{route}", _answering(handler))
        app.cleanup_ctx.append(self._session)
        app.on_shutdown.append(self._stop_waiting)

    async def _stop_waiting(self, _: web.Application) -> None:
        """Answer the pages' long polls at once, so stopping never waits for them."""
        self._stopping = True

    async def _session(self, _: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as self._http:
            yield

    # What the person sees

    async def _state(self, request: web.Request) -> web.Response:
        user = request.query.get("user", "")
        try:
            since = int(request.query.get("since", "-1"))
        except ValueError:
            since = -1
        deadline = time.monotonic() + LONG_POLL_SECONDS
        while (
            self._standin.state.version == since
            and time.monotonic() < deadline
            and not self._stopping
        ):
            await asyncio.sleep(0.1)
        state = self._standin.state
        modals = [state.views[v] for v in state.modal_stacks.get(user, []) if v in state.views]
        return web.json_response(
            {
                "version": state.version,
                "messages": [asdict(m) for m in state.messages],
                "ephemerals": [asdict(e) for e in state.ephemerals if e.user == user],
                "modals": modals,
            }
        )

    # What the person does

    async def _message_from_person(self, fields: dict[str, Any]) -> None:
        """A plain message, so that any text can be tried with the message shortcut."""
        user, channel = self._user(fields), self._channel(fields)
        text = str(fields.get("text", ""))
        self._standin.state.post(Message(channel, self._standin.next_ts(), text, [], "", user))

    async def _command(self, fields: dict[str, Any]) -> None:
        origin = Origin(self._user(fields), self._channel(fields))
        text = str(fields.get("text", ""))
        typed = str(fields.get("command", slack_payloads.COMMAND))
        if typed != slack_payloads.COMMAND:  # no app in this workspace offers it
            self._slackbot_says(origin, f"{typed} is not a valid command.")
            return
        body = slack_payloads.command(
            text,
            user=origin.user,
            channel=origin.channel,
            channel_name=self._channels[origin.channel],
            trigger_id=self._trigger(origin),
            response_url=self._response_url(origin, fields),
        )
        ack = await self._deliver(body)
        if isinstance(ack, str):
            self._slackbot_says(origin, f"{slack_payloads.COMMAND} failed with the error {ack}")
            return
        reply = ack.json() or ({"text": ack.body.decode()} if ack.body else {})
        if reply.get("text") or reply.get("blocks"):
            self._standin.show_reply(origin, reply)

    async def _shortcut(self, fields: dict[str, Any]) -> None:
        origin, message = self._message(fields)
        body = slack_payloads.message_action(
            message,
            callback_id=str(fields.get("callback_id", "")),
            user=origin.user,
            channel=origin.channel,
            channel_name=self._channels[origin.channel],
            trigger_id=self._trigger(origin),
            response_url=self._response_url(origin, fields),
        )
        await self._deliver_interaction(origin, body)

    async def _action(self, fields: dict[str, Any]) -> None:
        action: dict[str, Any] = {
            "type": "button",
            "action_id": str(fields.get("action_id", "")),
            "block_id": str(fields.get("block_id", "")),
            "value": str(fields.get("value", "")),
        }
        if isinstance(fields.get("selected_option"), dict):
            del action["value"]
            action.update(type="static_select", selected_option=fields["selected_option"])
        if fields.get("view_id"):
            user = self._user(fields)
            view = self._open_view(user, str(fields["view_id"]))
            body = slack_payloads.block_actions(
                action, user=user, trigger_id=self._trigger(Origin(user)), view=view
            )
            await self._deliver_interaction(Origin(user), body)
            return
        origin, message = self._message(fields)
        body = slack_payloads.block_actions(
            action,
            user=origin.user,
            trigger_id=self._trigger(origin),
            response_url=self._response_url(origin, fields),
            message=message,
            channel=origin.channel,
            channel_name=self._channels[origin.channel],
            ephemeral=bool(fields.get("ephemeral")),
        )
        await self._deliver_interaction(origin, body)

    async def _submit(self, fields: dict[str, Any]) -> None:
        user = self._user(fields)
        view = self._open_view(user, str(fields.get("view_id", "")))
        values = fields.get("values") or {}
        body = slack_payloads.view_submission(
            view, user=user, trigger_id=self._trigger(Origin(user)), values=values
        )
        ack = await self._deliver(body)
        if isinstance(ack, str):
            self._set_view(view["id"], {**view, "errors": {"": _trouble(ack)}})
            return
        self._apply_view_ack(user, view, ack.json())

    async def _close(self, fields: dict[str, Any]) -> None:
        user = self._user(fields)
        view = self._open_view(user, str(fields.get("view_id", "")))
        stack = self._standin.state.modal_stacks[user]
        del stack[stack.index(view["id"]) :]  # closing a modal closes any pushed above it
        self._standin.state.changed()
        if view.get("notify_on_close"):  # the app hears of it only if the view asked
            await self._deliver(slack_payloads.view_closed(view, user=user))

    # Slack's handling of an acknowledgement

    def _apply_view_ack(self, user: str, view: dict[str, Any], ack: dict[str, Any]) -> None:
        state = self._standin.state
        stack = state.modal_stacks[user]
        action = ack.get("response_action")
        if action == "update":
            self._set_view(view["id"], ack.get("view"))
        elif action == "push":
            pushed = f"V{next(self._ids):08d}P"
            self._set_view(pushed, ack.get("view"))
            stack.append(pushed)
        elif action == "errors":
            self._set_view(view["id"], {**view, "errors": ack.get("errors") or {}})
        elif action == "clear":
            stack.clear()
        else:
            stack.pop()
        state.changed()

    def _set_view(self, view_id: str, view: Any) -> None:
        self._standin.store_view(view_id, view)
        self._standin.state.changed()

    async def _deliver_interaction(self, origin: Origin, body: str) -> None:
        ack = await self._deliver(body)
        if isinstance(ack, str):
            self._slackbot_says(origin, _trouble(ack))

    async def _deliver(self, body: str) -> Ack | str:
        """Post to the app as Slack does; an error name as Slack reports it, on failure."""
        assert self._http is not None
        headers = slack_payloads.signed_headers(self._secret, body)
        try:
            async with self._http.post(
                self._request_url,
                data=body.encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=ACK_TIMEOUT_SECONDS),
            ) as response:
                ack = Ack(response.status, await response.read(), response.content_type)
        except TimeoutError:
            return "operation_timeout"
        except aiohttp.ClientError:
            return "dispatch_failed"
        return ack if ack.status == 200 else f"http_error ({ack.status})"

    def _slackbot_says(self, origin: Origin, text: str) -> None:
        ts = self._standin.next_ts()
        warning = Ephemeral(origin.channel, origin.user, ts, f":warning: {text}", [], "", SLACKBOT)
        self._standin.state.post_ephemeral(warning)

    # Ids Slack issues, and checks of what the page names

    def _trigger(self, origin: Origin) -> str:
        trigger = f"{next(self._ids)}.{secrets.token_hex(8)}"
        self._standin.state.triggers[trigger] = origin
        return trigger

    def _response_url(self, origin: Origin, fields: dict[str, Any]) -> str:
        key = secrets.token_hex(8)
        self._standin.state.response_urls[key] = origin
        return f"{fields['_base_url']}/response/{key}"

    def _user(self, fields: dict[str, Any]) -> str:
        user = str(fields.get("user", ""))
        if user not in self._users:
            raise BadRequest(f"no such user {user!r}")
        return user

    def _channel(self, fields: dict[str, Any]) -> str:
        channel = str(fields.get("channel", ""))
        if channel not in self._channels:
            raise BadRequest(f"no such channel {channel!r}")
        return channel

    def _message(self, fields: dict[str, Any]) -> tuple[Origin, dict[str, Any]]:
        """The message a button or shortcut was used on, as Slack includes it in payloads."""
        user, channel, ts = self._user(fields), self._channel(fields), str(fields.get("ts", ""))
        state = self._standin.state
        seen: list[Message | Ephemeral] = [
            *state.messages,
            *(e for e in state.ephemerals if e.user == user),
        ]
        for found in seen:
            if found.channel == channel and found.ts == ts:
                message = {
                    "type": "message",
                    "ts": found.ts,
                    "text": found.text,
                    "blocks": found.blocks,
                    "user": found.author,
                }
                if found.thread_ts:
                    message["thread_ts"] = found.thread_ts
                return Origin(user, channel, found.thread_ts), message
        raise BadRequest(f"no message {ts!r} in {channel}")

    def _open_view(self, user: str, view_id: str) -> dict[str, Any]:
        stack = self._standin.state.modal_stacks.get(user, [])
        if view_id not in stack or view_id not in self._standin.state.views:
            raise BadRequest(f"{user} has no open modal {view_id!r}")
        return self._standin.state.views[view_id]


def _trouble(error: str) -> str:
    return f"We had some trouble connecting to the app ({error}). Try again?"


Fields = dict[str, Any]


def _answering(
    handler: Callable[[Fields], Awaitable[None]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def route(request: web.Request) -> web.Response:
        try:
            fields = await request.json()
            if not isinstance(fields, dict):
                raise BadRequest("expected a JSON object")
            fields["_base_url"] = f"{request.scheme}://{request.host}"
            await handler(fields)
        except (BadRequest, json.JSONDecodeError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    return route
