"""`python -m bot sandbox` as a newcomer runs it, and the stand-in Slack's client routes.

What the page does in a real browser is in tests/browser.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

import bot.google.rpc
import bot.slack.messages
from bot.sandbox import workspace
from bot.standins.runner import BackgroundServer
from bot.standins.slack_api import SlackStandIn
from bot.standins.slack_client import LONG_POLL_SECONDS, SlackClientApi
from tests.sandbox_process import Sandbox, start_sandbox
from tests.slack_driver import wait_for


def state(sandbox: Sandbox, user: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{sandbox.url}/client/state?user={user}", timeout=30).json()
    return body


def act(sandbox: Sandbox, route: str, **fields: Any) -> httpx.Response:
    return httpx.post(f"{sandbox.url}/client/{route}", json=fields, timeout=10)


def test_it_needs_no_settings_and_ignores_the_shells() -> None:
    """Settings meant for a real deployment must not leak into the sandbox."""
    env = {
        **os.environ,
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "SLACK_BOT_TOKEN": "not-a-token",
        "ALLOWLIST_FILE": "/nonexistent.yaml",
        "OPERATIONS_API_URL": "http://127.0.0.1:1/v1",
    }
    sandbox = start_sandbox(env=env)
    try:
        assert "cancel-op sandbox" in httpx.get(sandbox.url + "/", timeout=10).text
        seen = state(sandbox, workspace.ONCALL)
        alerts = [m for m in seen["messages"] if m["author"] == workspace.ALERTS_BOT]
        assert len(alerts) == len(workspace.alerts())
        names = {op["name"] for op in httpx.get(f"{sandbox.url}/sandbox/operations").json()}
        assert names == {op.name for op in workspace.OPERATIONS}
        # The real bot answers, over its embedded Redis: help comes back to the person only.
        assert (
            act(
                sandbox, "command", user=workspace.ONCALL, channel=workspace.CHANNEL, text="help"
            ).status_code
            == 200
        )
        replies = wait_for(lambda: state(sandbox, workspace.ONCALL)["ephemerals"], what="help")
        assert "/cancel-op status NAME" in replies[0]["text"]
        assert state(sandbox, workspace.NOT_ALLOWED)["ephemerals"] == []
    finally:
        logged = sandbox.stop()
    assert sandbox.process.returncode == 0
    assert "Traceback" not in logged


def test_a_busy_port_is_one_line_naming_the_flag() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "bot", "sandbox", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"cancel-op: --port: cannot listen on 127.0.0.1:{port}")
    assert "--port 0" in lines[0]


def test_a_person_cannot_act_on_anothers_modal(sandbox: Sandbox) -> None:
    done = workspace.ALREADY_DONE.name
    act(sandbox, "command", user=workspace.ONCALL, channel=workspace.CHANNEL, text=done)
    modals = wait_for(
        lambda: [
            m
            for m in state(sandbox, workspace.ONCALL)["modals"]
            if "already finished" in str(m["blocks"])
        ],
        what="modal",
    )
    view_id = modals[0]["id"]
    answer = act(sandbox, "submit", user=workspace.NOT_ALLOWED, view_id=view_id)
    assert answer.status_code == 400
    assert "no open modal" in answer.json()["error"]
    assert [m["id"] for m in state(sandbox, workspace.ONCALL)["modals"]] == [view_id]
    assert act(sandbox, "close", user=workspace.ONCALL, view_id=view_id).status_code == 200
    assert state(sandbox, workspace.ONCALL)["modals"] == []


def test_the_page_cannot_name_unknown_people_channels_or_messages(sandbox: Sandbox) -> None:
    cases = [
        ("command", {"user": "U0NOBODY", "channel": workspace.CHANNEL, "text": "help"}, "user"),
        ("command", {"user": workspace.ONCALL, "channel": "C0OTHER", "text": "help"}, "channel"),
        (
            "action",
            {
                "user": workspace.ONCALL,
                "channel": workspace.CHANNEL,
                "ts": "1.000001",
                "action_id": "cancel_op",
                "value": "x",
            },
            "no message",
        ),
    ]
    before = state(sandbox, workspace.ONCALL)["version"]
    for route, fields, error in cases:
        answer = act(sandbox, route, **fields)
        assert answer.status_code == 400
        assert error in answer.json()["error"]
    assert state(sandbox, workspace.ONCALL)["version"] == before


def test_raising_an_alert_adds_an_operation_and_posts_as_the_pipeline(sandbox: Sandbox) -> None:
    raised = httpx.post(f"{sandbox.url}/sandbox/alerts", json={"behaviour": "fails"}).json()
    operations = httpx.get(f"{sandbox.url}/sandbox/operations").json()
    assert [op["behaviour"] for op in operations if op["name"] == raised["name"]] == ["fails"]
    alert = [m for m in state(sandbox, workspace.ONCALL)["messages"] if raised["name"] in m["text"]]
    assert alert[0]["author"] == workspace.ALERTS_BOT
    bad = httpx.post(f"{sandbox.url}/sandbox/alerts", json={"behaviour": "explodes"})
    assert bad.status_code == 400


def modal_with(sandbox: Sandbox, user: str, *words: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        lambda: next((m for m in state(sandbox, user)["modals"]
                      if all(w in json.dumps(m["blocks"]) for w in words)), None),
        what=f"a modal with {words}",
    )  # fmt: skip
    return found


def test_adas_calls_act_as_the_impersonated_account_which_the_page_can_refuse(
    sandbox: Sandbox,
) -> None:
    name = httpx.post(f"{sandbox.url}/sandbox/alerts", json={"behaviour": "cancels"}).json()["name"]
    account = workspace.IMPERSONATED
    opened: list[tuple[str, str]] = []

    def ask(user: str, *words: str) -> None:
        act(sandbox, "command", user=user, channel=workspace.CHANNEL, text=name)
        opened.append((user, modal_with(sandbox, user, name, *words)["id"]))

    try:
        ask(workspace.ONCALL, f"Acting in Google Cloud as `{account}`")
        assert operation(sandbox, name)["calls_as"] == {account: {"GET": 1}}
        ask(workspace.ROTATION_MEMBER, "with the bot's own credentials")
        assert operation(sandbox, name)["calls_as"] == {account: {"GET": 1}, "": {"GET": 1}}
        refusing = httpx.post(f"{sandbox.url}/sandbox/iam", json={"refuse": True}).json()
        assert refusing["refusing"] == "PERMISSION_DENIED"
        ask(workspace.ONCALL, "PERMISSION_DENIED", f"may not act as `{account}`")
        assert operation(sandbox, name)["calls_as"][account] == {"GET": 1}  # nothing more sent
        assert httpx.get(f"{sandbox.url}/sandbox/iam").json()["refused"] >= 1
    finally:
        httpx.post(f"{sandbox.url}/sandbox/iam", json={"refuse": False})
        for user, view_id in opened:
            act(sandbox, "close", user=user, view_id=view_id)


def operation(sandbox: Sandbox, name: str) -> dict[str, Any]:
    operations = httpx.get(f"{sandbox.url}/sandbox/operations", timeout=10).json()
    found: dict[str, Any] = next(op for op in operations if op["name"] == name)
    return found


def seconds_ago(stamp: str) -> float:
    return datetime.now(UTC).timestamp() - datetime.fromisoformat(stamp).timestamp()


def test_operations_started_minutes_ago_and_report_their_progress(sandbox: Sandbox) -> None:
    """The alert says "stuck for 45 min": Google's createTime agrees, whenever it is run."""
    seeded = operation(sandbox, workspace.CANCELS.name)
    assert 47 * 60 <= seconds_ago(seeded["create_time"]) < 60 * 60
    assert seeded["status_message"].startswith("Re-indexing ")
    assert seeded["status_message"].endswith(" % done")
    done = operation(sandbox, workspace.ALREADY_DONE.name)
    assert 500 * 60 <= seconds_ago(done["end_time"]) < 520 * 60
    assert done["status_message"] == "Done"


def test_a_cancelled_operation_is_stamped_when_it_ended_and_says_where_it_stopped(
    sandbox: Sandbox,
) -> None:
    raised = httpx.post(f"{sandbox.url}/sandbox/alerts", json={"behaviour": "cancels"}).json()
    user = workspace.ROTATION_MEMBER
    act(sandbox, "command", user=user, channel=workspace.CHANNEL, text=raised["name"])
    modal = modal_with(sandbox, user, raised["name"], "best effort")  # filled, not loading
    asked = datetime.now(UTC).timestamp()
    act(sandbox, "submit", user=user, view_id=modal["id"], values={})
    ended = wait_for(
        lambda: (op := operation(sandbox, raised["name"]))["done"] and op, what="end", timeout=60
    )
    assert asked - 1 <= datetime.fromisoformat(ended["end_time"]).timestamp()
    assert seconds_ago(ended["end_time"]) >= 0
    assert ended["status_message"].startswith("Cancelled at ")
    assert "done" not in ended["status_message"]


def test_a_command_no_app_offers_is_answered_by_slackbot_alone(sandbox: Sandbox) -> None:
    user = workspace.ROTATION_MEMBER
    before = len(state(sandbox, user)["ephemerals"])
    act(sandbox, "command", user=user, channel=workspace.CHANNEL, command="/cancel", text="x")
    told = state(sandbox, user)["ephemerals"][before:]
    assert [(e["author"], e["text"]) for e in told] == [
        ("USLACKBOT", ":warning: /cancel is not a valid command.")
    ]


def test_ctrl_c_answers_an_open_page_and_stops_without_waiting_for_it() -> None:
    sandbox = start_sandbox()
    version = state(sandbox, workspace.ONCALL)["version"]
    answers: list[int] = []

    def wait_like_the_page() -> None:
        url = f"{sandbox.url}/client/state?user={workspace.ONCALL}&since={version}"
        answers.append(httpx.get(url, timeout=60).status_code)

    page = threading.Thread(target=wait_like_the_page)
    page.start()
    time.sleep(0.5)  # the page's long poll is waiting for a change
    started = time.monotonic()
    sandbox.stop()
    page.join(timeout=30)
    assert answers == [200]
    assert sandbox.process.returncode == 0
    assert time.monotonic() - started < LONG_POLL_SECONDS / 2  # not held by the poll


def test_the_address_stays_last_and_closing_the_terminal_removes_the_folder() -> None:
    """The bot's log lines go to a file, so a cancel watched to its end prints nothing
    under the address; SIGHUP (the terminal closing) stops it as Ctrl-C does."""
    sandbox = start_sandbox()
    folder = sandbox.bot_log.parent
    assert folder.name.startswith("cancel-op-sandbox-") and folder.is_dir()
    name = workspace.CANCELS.name
    act(sandbox, "command", user=workspace.ONCALL, channel=workspace.CHANNEL, text=name)
    # The confirmation once it shows the operation, not while it is still looking it up.
    modal = modal_with(sandbox, workspace.ONCALL, name, "best effort")
    act(sandbox, "submit", user=workspace.ONCALL, view_id=modal["id"], values={})
    wait_for(
        lambda: [
            m for m in state(sandbox, workspace.ONCALL)["messages"] if "was cancelled" in m["text"]
        ],
        what="the final follow-up",
        timeout=60,
    )
    assert "poll" in sandbox.bot_log.read_text()  # the poller's lines went to the file
    sandbox.process.send_signal(signal.SIGHUP)
    sandbox.process.wait(timeout=30)
    assert sandbox.process.returncode == 0
    assert not folder.exists()
    assert sandbox.process.stdout is not None
    assert sandbox.process.stdout.read() == ""  # nothing printed under the address
    assert sandbox.logged() == ""
    sandbox.log.close()


def test_closing_a_modal_tells_the_app_only_when_the_view_asked() -> None:
    """Slack sends view_closed for the closed modal when it set notify_on_close, else nothing."""
    received: list[str] = []

    async def make_app() -> web.Application:
        async def events(request: web.Request) -> web.Response:
            received.append(json.loads(str((await request.post())["payload"]))["type"])
            return web.Response()

        app = web.Application()
        app.router.add_post("/slack/events", events)
        return app

    app = BackgroundServer(make_app).start()
    standin = SlackStandIn()
    client = SlackClientApi(standin, f"{app.url}/slack/events", "secret",
                            {workspace.CHANNEL: "alerts"}, {workspace.ONCALL: "Ada"})  # fmt: skip

    async def make_slack() -> web.Application:
        slack_app = await standin.make_app()
        client.add_routes(slack_app)
        return slack_app

    slack = BackgroundServer(make_slack).start()
    try:
        modal = {"type": "modal", "title": {"type": "plain_text", "text": "Confirm"}, "blocks": []}
        standin.store_view("V1", modal)
        standin.store_view("V2", {**modal, "notify_on_close": True})
        standin.state.modal_stacks[workspace.ONCALL] = ["V1", "V2"]
        for view_id in ("V2", "V1"):  # the top one first, as Esc closes them
            closed = httpx.post(f"{slack.url}/client/close",
                                json={"user": workspace.ONCALL, "view_id": view_id})  # fmt: skip
            assert closed.status_code == 200
    finally:
        slack.stop()
        app.stop()
    assert received == ["view_closed"]  # for V2 alone
    assert standin.state.modal_stacks[workspace.ONCALL] == []


def test_every_emoji_the_bot_writes_is_drawn_by_the_page() -> None:
    """Slack draws `:name:` as its emoji; the page must too, or people read the code."""
    sources = [Path(bot.slack.messages.__file__), Path(bot.google.rpc.__file__)]
    written = {name for path in sources for name in re.findall(r":([a-z_]+):", path.read_text())}
    script = (Path(workspace.__file__).parent / "static" / "sandbox.js").read_text()
    table = script[script.index("const EMOJI = {") : script.index("};", script.index("EMOJI"))]
    drawn = set(re.findall(r"([a-z_]+): \"", table))
    assert written and not written - drawn, sorted(written - drawn)
