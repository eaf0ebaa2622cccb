"""The Slack stand-in edits messages as Slack does: only the bot's own, and only ones that exist."""

from __future__ import annotations

import httpx

from bot.standins.runner import BackgroundServer
from bot.standins.slack_api import Message, SlackStandIn


def test_chat_update_edits_the_bots_own_messages_only(
    slack: SlackStandIn, slack_server: tuple[SlackStandIn, BackgroundServer]
) -> None:
    api = f"{slack_server[1].url}/api"
    posted = httpx.post(f"{api}/chat.postMessage", json={"channel": "C1", "text": "mine"}).json()
    slack.state.post(Message("C1", "1.000001", "a person's", [], "", author="U0ADA"))

    def update(ts: str) -> dict[str, object]:
        answer = httpx.post(f"{api}/chat.update", json={"channel": "C1", "ts": ts, "text": "x"})
        return dict(answer.json())

    assert update(posted["ts"])["ok"] is True
    assert update("1.000001") == {"ok": False, "error": "cant_update_message"}
    assert update("9.999999") == {"ok": False, "error": "message_not_found"}
    assert [m.text for m in slack.state.messages] == ["x", "a person's"]
