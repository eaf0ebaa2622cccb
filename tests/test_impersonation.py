"""Bindings that impersonate: every Google call of a request carries a token for the service
account its granting binding names, minted by the IAM Credentials API; a token that cannot be
had stops the request before anything reaches the Operations API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import redis.asyncio as aredis

import bot.google.impersonation
from bot.google.credentials import GoogleTokens
from bot.google.impersonation import (
    AccountTokens,
    AnonymousMinter,
    GoogleAuthMinter,
    TokenUnavailable,
)
from bot.google.rpc import RpcCode
from bot.policy.names import parse_operation_name
from bot.runtime import metrics
from bot.standins.iam_credentials import IamCredentialsStandIn
from bot.standins.operations_api import OperationsStandIn
from bot.standins.runner import BackgroundServer
from bot.standins.slack_api import SlackStandIn
from bot.watch.store import WATCHES_KEY, WatchStore
from bot.watch.submission import Cancellations, CancelRequest
from tests.conftest import ONCALL, ROTATION, ROTATION_MEMBER, RunningBot
from tests.faults import audit_entries, cancels_sent
from tests.google_auth_standins import TokenEndpoint
from tests.listeners.actions.approval_flow import APPROVE, LEAD, approval_message, ask, click
from tests.listeners.flow import OP, closed, confirm, open_modal, response_text, seed, view_text
from tests.slack_driver import wait_for
from tests.test_google_auth import key_file, no_ambient_credentials, token_endpoint  # noqa: F401
from tests.test_workers import Spawn, spawn_worker  # noqa: F401

PROD = "prod-cancel@prod-ops.iam.gserviceaccount.com"
STAGING = "staging-cancel@staging-ops.iam.gserviceaccount.com"
READER = "oncall-read@prod-ops.iam.gserviceaccount.com"
LISTER = "oncall-list@prod-ops.iam.gserviceaccount.com"
STAGING_OP = "projects/staging-1/locations/global/operations/op-9"
PARENT = "projects/prod-1/locations/global"
ALLOWLIST = f"""
bindings:
  - permission: cloudaicompanion.operations.cancel
    members: [user:{ONCALL}]
    resources: [projects/prod-1/locations/*/operations/*]
    impersonate: {PROD}
  - permission: cloudaicompanion.operations.cancel
    members: [user:{ONCALL}]
    impersonate: {STAGING}
  - permission: cloudaicompanion.operations.cancel
    members: [usergroup:{ROTATION}]
  - permission: cloudaicompanion.operations.get
    members: [user:{ONCALL}]
    impersonate: {READER}
  - permission: cloudaicompanion.operations.list
    members: [user:{ONCALL}]
    impersonate: {LISTER}
"""


@pytest.fixture
def start(
    start_bot: Callable[..., RunningBot],
    iam: IamCredentialsStandIn,
    iam_server: tuple[IamCredentialsStandIn, BackgroundServer],
) -> Callable[..., RunningBot]:
    def run(**env: object) -> RunningBot:
        return start_bot(ALLOWLIST, IAM_CREDENTIALS_API_URL=f"{iam_server[1].url}/v1",
                         POLL_INITIAL_SECONDS="0.05", POLL_MAX_SECONDS="0.2", **env)  # fmt: skip

    return run


def identities(google: OperationsStandIn, name: str, action: str = "") -> list[str]:
    """Which service account each request about `name` acted as ("" for the bot's own)."""
    return [r.identity for r in google.state.requests_for(name, action)]


def thread_text(slack: SlackStandIn) -> str:
    return json.dumps([[m.text, m.blocks] for m in slack.state.messages])


def test_every_call_of_a_cancel_carries_the_token_of_its_granting_bindings_account(
    start: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
    iam: IamCredentialsStandIn,
    redis_url: str,
) -> None:
    seed(google, polls_until_done=2)
    seed(google, STAGING_OP)
    running = start()
    view = open_modal(running, slack, ONCALL)
    assert f"Acting in Google Cloud as `{PROD}`" in view_text(view)
    assert closed(confirm(running, view, ONCALL))
    wait_for(lambda: "was cancelled" in thread_text(slack), what="the final state")
    assert identities(google, OP, "cancel") == [PROD]
    assert len(identities(google, OP)) >= 3  # the confirmation's GET and the polls
    assert set(identities(google, OP)) == {PROD}
    request_message = next(m for m in slack.state.messages if "asked to cancel" in m.text)
    assert f"Acting in Google Cloud as `{PROD}`" in json.dumps(request_message.blocks)
    for event in ("confirmed", "cancel_sent", "final_state"):
        assert [e["acting_as"] for e in audit_entries(redis_url, event, OP)] == [PROD], event
    # One token, minted once without credentials (GOOGLE_AUTH=anonymous), served every call.
    assert [(r.account, r.authorization, r.status) for r in iam.state.requests] == [(PROD, "", 200)]
    assert iam.state.requests[0].body == {
        "scope": ["https://www.googleapis.com/auth/cloud-platform"],
        "lifetime": "3600s",
    }

    # Another resource: the next binding in file order, with its own account.
    view = open_modal(running, slack, ONCALL, STAGING_OP)
    assert f"`{STAGING}`" in view_text(view)
    assert identities(google, STAGING_OP) == [STAGING]

    # A binding without impersonate: the bot's own credentials, and no token asked for.
    view = open_modal(running, slack, ROTATION_MEMBER)
    assert "with the bot's own credentials" in view_text(view)
    assert identities(google, OP)[-1] == ""
    assert google.state.requests_for(OP)[-1].authorization == ""
    assert [r.account for r in iam.state.requests] == [PROD, STAGING]


def test_status_and_list_carry_the_accounts_of_their_own_bindings(
    start: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
) -> None:
    seed(google, verb="delete")
    running = start()
    assert running.driver.command(f"status {OP}", user=ONCALL).status_code == 200
    assert OP in response_text(slack)
    assert identities(google, OP) == [READER]
    slack.state.responses.clear()
    assert running.driver.command(f"list {PARENT}", user=ONCALL).status_code == 200
    assert "1 running operation" in response_text(slack)
    assert identities(google, PARENT, "list") == [LISTER]


@pytest.mark.parametrize(
    ("refusal", "code", "words"),
    [
        ("PERMISSION_DENIED", "PERMISSION_DENIED", f"The bot may not act as `{PROD}`."),
        ("NOT_FOUND", "NOT_FOUND", f"Google has no service account `{PROD}`."),
        ("UNAVAILABLE", "UNAVAILABLE", f"gave the bot no token to act as `{PROD}`"),
    ],
)
def test_a_refused_token_is_told_with_its_code_and_nothing_reaches_the_operations_api(
    start: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
    iam: IamCredentialsStandIn,
    refusal: str,
    code: str,
    words: str,
) -> None:
    seed(google)
    iam.state.refuse(PROD, refusal)
    running = start()
    shown = view_text(open_modal(running, slack, ONCALL))
    assert f"*{code}*" in shown and words in shown
    if refusal == "PERMISSION_DENIED":
        assert f"roles/iam.serviceAccountTokenCreator on `{PROD}`" in shown
    assert "<html>" not in shown  # a proxy's page stays in the logs
    assert google.state.requests == []
    assert [r.account for r in iam.state.requests] == [PROD]


def test_a_token_refused_at_the_cancel_sends_no_cancel_and_says_why_in_the_thread(
    start: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
    iam: IamCredentialsStandIn,
    redis_url: str,
) -> None:
    seed(google)
    iam.state.lifetime_seconds = 300  # within 5 minutes of expiry at once: never reused
    running = start()
    view = open_modal(running, slack, ONCALL)
    iam.state.refuse(PROD)
    assert closed(confirm(running, view, ONCALL))
    wait_for(lambda: "did not send the cancel" in thread_text(slack), what="the answer")
    said = thread_text(slack)
    assert "PERMISSION_DENIED" in said and f"The bot may not act as `{PROD}`." in said
    assert google.state.requests_for(OP, "cancel") == []
    [sent] = audit_entries(redis_url, "cancel_sent", OP)
    assert (sent["outcome"], sent["acting_as"], sent["token_refused"]) == (
        "PERMISSION_DENIED", PROD, "True",
    )  # fmt: skip


def test_a_token_refused_mid_watch_counts_as_a_failed_poll_and_the_watch_still_ends(
    start: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
    iam: IamCredentialsStandIn,
    redis_url: str,
) -> None:
    seed(google, polls_until_done=10**6)
    iam.state.lifetime_seconds = 300  # never kept: every poll asks for a token
    running = start()
    assert closed(confirm(running, open_modal(running, slack, ONCALL), ONCALL))
    wait_for(lambda: len(google.state.requests_for(OP)) >= 3, what="polls")
    iam.state.refuse(PROD)
    polls = len(google.state.requests_for(OP))
    wait_for(lambda: "I lost track" in thread_text(slack), timeout=30, what="the last word")
    said = thread_text(slack)
    assert "PERMISSION_DENIED" in said and f"The bot may not act as `{PROD}`." in said
    refused = [r for r in iam.state.requests_for(PROD) if r.status == 403]
    assert len(refused) == 5  # MAX_POLL_ERRORS failed polls, then the watch ended
    [ended] = audit_entries(redis_url, "final_state", OP)
    assert (ended["outcome"], ended["acting_as"]) == ("lost_track:PERMISSION_DENIED", PROD)
    # Nothing reached the Operations API after the refusal (but a poll whose token came just
    # before it).
    assert len(google.state.requests_for(OP)) <= polls + 1


def test_permission_denied_by_the_operations_api_names_the_account_acted_as(
    start: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    google.state.deny(PROD, "projects/prod-1/")
    running = start()
    shown = view_text(open_modal(running, slack, ONCALL))
    assert "*PERMISSION_DENIED*" in shown
    assert f"The service account `{PROD}`, which the bot acts as here, may not do this" in shown
    assert f"grant `{PROD}` the IAM permission" in shown
    assert identities(google, OP) == [PROD]


def test_a_token_near_its_expiry_mid_watch_is_replaced_once_and_the_new_one_kept(
    start: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
    iam: IamCredentialsStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed(google, polls_until_done=10**6)
    iam.state.lifetime_seconds = 600  # the first token lives 10 minutes
    running = start()
    assert closed(confirm(running, open_modal(running, slack, ONCALL), ONCALL))
    wait_for(lambda: len(google.state.requests_for(OP)) >= 3, what="polls")
    [first] = iam.state.minted
    iam.state.lifetime_seconds = None  # the next one an hour, as asked
    # 6 minutes on, the first token has under 5 minutes left: the next poll gets another.
    offset = timedelta(minutes=6)
    monkeypatch.setattr(bot.google.impersonation, "_now", lambda: datetime.now(UTC) + offset)
    wait_for(lambda: len(iam.state.minted) == 2, what="a new token")
    polls_before = len(google.state.requests_for(OP))
    wait_for(lambda: len(google.state.requests_for(OP)) >= polls_before + 3, what="more polls")
    carried = [r.authorization.removeprefix("Bearer ") for r in google.state.requests_for(OP)]
    second = next(t for t in iam.state.minted if t != first)
    switch = carried.index(second)
    assert set(carried[:switch]) == {first} and set(carried[switch:]) == {second}
    assert len(iam.state.minted) == 2
    assert {iam.state.minted[t].account for t in (first, second)} == {PROD}


def test_concurrent_requests_for_one_account_share_one_refresh_and_a_refusal_is_not_kept(
    iam: IamCredentialsStandIn, iam_server: tuple[IamCredentialsStandIn, BackgroundServer]
) -> None:
    iam.state.latency_seconds = 0.3  # all twenty arrive while the first is on its way
    refusals_before = refusals_counted()

    async def many() -> tuple[list[dict[str, str]], list[BaseException | dict[str, str]]]:
        async with aiohttp.ClientSession() as http:
            tokens = AccountTokens(AnonymousMinter(http, f"{iam_server[1].url}/v1"))
            granted = await asyncio.gather(*(tokens.headers(PROD) for _ in range(20)))
            iam.state.refuse(STAGING)
            refused = await asyncio.gather(
                *(tokens.headers(STAGING) for _ in range(5)), return_exceptions=True
            )
            iam.state.accept(STAGING)
            refused.append(await tokens.headers(STAGING))
            return granted, refused

    granted, refused = asyncio.run(many())
    assert len({h["Authorization"] for h in granted}) == 1
    assert len(iam.state.requests_for(PROD)) == 1
    for error in refused[:5]:
        assert isinstance(error, TokenUnavailable)
        assert (error.code, error.account) == (RpcCode.PERMISSION_DENIED, STAGING)
    assert refused[5] == {"Authorization": f"Bearer {_minted_for(iam, STAGING)}"}
    assert [r.status for r in iam.state.requests_for(STAGING)] == [403, 200]
    assert refusals_counted() == refusals_before + 1  # in /metrics, by code


def refusals_counted() -> float:
    labels = {"method": "generateAccessToken", "code": "PERMISSION_DENIED"}
    return metrics.REGISTRY.get_sample_value("cancel_op_google_requests_total", labels) or 0.0


def _minted_for(iam: IamCredentialsStandIn, account: str) -> str:
    [token] = [t for t, minted in iam.state.minted.items() if minted.account == account]
    return token


@pytest.fixture
def iam_for_workers(
    iam: IamCredentialsStandIn,
    iam_server: tuple[IamCredentialsStandIn, BackgroundServer],
) -> Iterator[str]:
    yield f"{iam_server[1].url}/v1"


def test_a_worker_process_polls_a_watch_as_the_account_the_confirm_granted(
    spawn_worker: Spawn,  # noqa: F811
    iam_for_workers: str,
    slack: SlackStandIn,
    google: OperationsStandIn,
    iam: IamCredentialsStandIn,
    redis_url: str,
) -> None:
    impersonated = "projects/prod-1/locations/l/operations/as-account"
    own = "projects/prod-1/locations/l/operations/stored-before-accounts"
    for name in (impersonated, own):
        seed(google, name, polls_until_done=3)

    async def submit() -> None:
        client = aredis.Redis.from_url(redis_url, decode_responses=True)
        store = WatchStore(client, active_ttl_ms=3_600_000)
        cancellations = Cancellations(store, lambda: None)
        request = CancelRequest(parse_operation_name(impersonated), ONCALL, "C0CHANNEL", "",
                                account=PROD)  # fmt: skip
        assert (await cancellations.request("view-1", request)).queued
        submitted = await cancellations.request(
            "view-2", CancelRequest(parse_operation_name(own), ONCALL, "C0CHANNEL", "")
        )
        # A watch stored by a bot that kept no account has no such field.
        stored = json.loads(str(await client.hget(WATCHES_KEY, submitted.watch_id)))
        del stored["account"]
        await client.hset(WATCHES_KEY, submitted.watch_id, json.dumps(stored))
        await client.aclose()

    asyncio.run(submit())
    spawn_worker(IAM_CREDENTIALS_API_URL=iam_for_workers)
    wait_for(lambda: len([m for m in slack.state.messages if "was cancelled" in m.text]) == 2,
             timeout=30, what="both final states")  # fmt: skip
    assert identities(google, impersonated, "cancel") == [PROD]
    assert set(identities(google, impersonated)) == {PROD}
    assert identities(google, own, "cancel") == [""]
    assert set(identities(google, own)) == {""}
    assert [r.account for r in iam.state.requests] == [PROD]


def test_with_real_credentials_the_token_request_carries_the_bots_own_token(
    key_file: TokenEndpoint,  # noqa: F811
    start: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
    iam: IamCredentialsStandIn,
) -> None:
    """google-auth's impersonated credentials over the bot's ADC (a service-account key)."""
    seed(google)
    seed(google, STAGING_OP)
    iam.state.refuse(STAGING)
    running = start(tokens=GoogleTokens.from_adc())
    view = open_modal(running, slack, ONCALL)
    assert "Cancel operation" in json.dumps(view.get("submit"))
    [asked] = iam.state.requests
    assert asked.account == PROD
    assert asked.authorization.removeprefix("Bearer ") in key_file.tokens.issued
    assert asked.body["scope"] == ["https://www.googleapis.com/auth/cloud-platform"]
    assert asked.body["lifetime"] == "3600s"
    assert identities(google, OP) == [PROD]
    assert iam.minted(google.state.requests_for(OP)[0].authorization) is not None
    # google-auth's refusal is read for its HTTP status and google.rpc code too.
    shown = view_text(open_modal(running, slack, ONCALL, STAGING_OP))
    assert "*PERMISSION_DENIED*" in shown and f"may not act as `{STAGING}`" in shown
    assert google.state.requests_for(STAGING_OP) == []


def test_a_token_answer_that_trickles_is_given_up_on_within_the_mints_deadline(
    key_file: TokenEndpoint,  # noqa: F811
    iam: IamCredentialsStandIn,
    iam_server: tuple[IamCredentialsStandIn, BackgroundServer],
) -> None:
    """A proxy passing generateAccessToken's answer on a byte every 2 s would otherwise hold
    the mint, and every call for the account that shares it, for minutes."""
    iam.state.trickle_seconds = 2.0  # about 80 bytes: close to three minutes
    minter = GoogleAuthMinter(GoogleTokens.from_adc(), f"{iam_server[1].url}/v1")

    async def mint() -> None:
        async with asyncio.timeout(60):  # the test's own bound, far above the mint's
            await minter.mint(PROD)

    with pytest.raises(TokenUnavailable) as refused:
        asyncio.run(mint())
    assert refused.value.code is RpcCode.DEADLINE_EXCEEDED
    assert [r.account for r in iam.state.requests] == [PROD]


def test_the_audit_names_the_bots_own_identity_when_no_account_is_used(
    start: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn,
    redis_url: str,
) -> None:  # fmt: skip
    seed(google)
    running = start()
    assert closed(confirm(running, open_modal(running, slack, ROTATION_MEMBER), ROTATION_MEMBER))
    wait_for(lambda: audit_entries(redis_url, "cancel_sent", OP), what="the cancel")
    [confirmed] = audit_entries(redis_url, "confirmed", OP)
    assert confirmed["acting_as"] == "bot"
    [sent] = audit_entries(redis_url, "cancel_sent", OP)
    assert sent["acting_as"] == "bot"


def test_an_approved_cancel_acts_as_the_account_of_the_requesters_grant(
    start_bot: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
    iam: IamCredentialsStandIn,
    iam_server: tuple[IamCredentialsStandIn, BackgroundServer],
    redis_url: str,
) -> None:
    """The approver's click sends the requester's cancel, so it carries the token of the
    requester's granting binding (never the approver's, who need not hold the cancel)."""
    protected = ALLOWLIST.replace(
        f"    impersonate: {PROD}\n",
        f"    impersonate: {PROD}\n    approval:\n      approvers: [user:{LEAD}]\n",
    )
    seed(google, polls_until_done=2)
    running = start_bot(protected, IAM_CREDENTIALS_API_URL=f"{iam_server[1].url}/v1",
                        POLL_INITIAL_SECONDS="0.05", POLL_MAX_SECONDS="0.2")  # fmt: skip
    assert closed(ask(running, slack))
    message = approval_message(slack)
    assert f"Acting in Google Cloud as `{PROD}`" in json.dumps(message.blocks)
    assert cancels_sent(google, OP) == 0
    click(running, message, LEAD, APPROVE)
    wait_for(lambda: "was cancelled" in thread_text(slack), what="the final state")
    assert identities(google, OP, "cancel") == [PROD]
    assert set(identities(google, OP)) == {PROD}
    for event in ("approval_requested", "approval_approved", "cancel_sent", "final_state"):
        assert [e["acting_as"] for e in audit_entries(redis_url, event, OP)] == [PROD], event
