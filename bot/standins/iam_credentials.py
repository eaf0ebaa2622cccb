"""A stand-in for Google's IAM Service Account Credentials API (generateAccessToken) over
real HTTP.

It mints a distinguishable token per service account with an `expireTime`, records each
request and the token that authorised it, and refuses as Google does: PERMISSION_DENIED
(the caller lacks roles/iam.serviceAccountTokenCreator, or the account does not exist),
NOT_FOUND, a bad request, or a proxy's non-JSON 5xx page. The Operations API stand-in asks
it which account a token belongs to (`minted`). Point IAM_CREDENTIALS_API_URL at `{url}/v1`.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from bot.standins.google_errors import google_error
from bot.standins.trickle import trickle

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
_LIFETIME = re.compile(r"([0-9]+)s")
_MAX_LIFETIME_SECONDS = 3600  # without the org policy that allows 12 h, as by default
# The real API's refusal of an account the caller may not use (or that does not exist).
_DENIED = (
    "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist)."
)
_UNAVAILABLE_PAGE = "<html><body><h1>502 Bad Gateway</h1></body></html>"


@dataclass(frozen=True)
class MintedToken:
    token: str
    account: str
    expires: float  # time.time() at which it stops being accepted


@dataclass
class TokenRequest:
    account: str
    authorization: str  # what authorised it: the bot's own token, or "" (anonymous)
    body: Any
    status: int  # how it was answered


@dataclass
class IamCredentialsState:
    minted: dict[str, MintedToken] = field(default_factory=dict)
    requests: list[TokenRequest] = field(default_factory=list)
    # account -> how every request for it is refused: "PERMISSION_DENIED", "NOT_FOUND",
    # "UNAVAILABLE" (a proxy's HTML 502 page)
    refusals: dict[str, str] = field(default_factory=dict)
    # Lifetime of the tokens minted, whatever was asked: short ones make a test see expiry.
    lifetime_seconds: int | None = None
    latency_seconds: float = 0.0
    # Seconds between the bytes of each answer (a proxy that trickles); 0: at once.
    trickle_seconds: float = 0.0

    def refuse(self, account: str, how: str = "PERMISSION_DENIED") -> None:
        self.refusals[account] = how

    def accept(self, account: str) -> None:
        self.refusals.pop(account, None)

    def requests_for(self, account: str) -> list[TokenRequest]:
        return [r for r in self.requests if r.account == account]


class IamCredentialsStandIn:
    def __init__(self) -> None:
        self.state = IamCredentialsState()

    def reset(self) -> None:
        self.state = IamCredentialsState()

    def minted(self, authorization: str) -> MintedToken | None:
        """The token an `Authorization: Bearer …` header carries, if this stand-in minted it."""
        return self.state.minted.get(authorization.removeprefix("Bearer "))

    async def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(
            "/v1/projects/{project}/serviceAccounts/{account}:generateAccessToken", self._generate
        )
        app.router.add_get("/_standin/iam", self._summary)
        app.router.add_post("/_standin/iam/refusals", self._set_refusal)
        return app

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        state = self.state  # the state of the test that sent it, whatever comes after
        account = request.match_info["account"]
        try:
            body: Any = await request.json()
        except ValueError:
            body = None
        record = TokenRequest(account, request.headers.get("Authorization", ""), body, 0)
        state.requests.append(record)
        if state.latency_seconds:
            await asyncio.sleep(state.latency_seconds)
        response = self._answer(state, request.match_info["project"], account, body)
        record.status = response.status
        if state.trickle_seconds:
            return await trickle(request, response, state.trickle_seconds)
        return response

    @staticmethod
    def _answer(state: IamCredentialsState, project: str, account: str, body: Any) -> web.Response:
        if project != "-":
            return google_error(400, "INVALID_ARGUMENT", "The project must be the wildcard '-'.")
        if not isinstance(body, dict) or not body.get("scope"):
            return google_error(400, "INVALID_ARGUMENT", "Scope is required.")
        lifetime = _LIFETIME.fullmatch(str(body.get("lifetime", "3600s")))
        if lifetime is None or not 1 <= int(lifetime.group(1)) <= _MAX_LIFETIME_SECONDS:
            return google_error(
                400, "INVALID_ARGUMENT", "The lifetime must be between 1s and 3600s, like 3600s."
            )
        refusal = state.refusals.get(account)
        if refusal == "UNAVAILABLE":
            return web.Response(status=502, text=_UNAVAILABLE_PAGE, content_type="text/html")
        if refusal == "NOT_FOUND":
            return google_error(404, "NOT_FOUND", f"Service account {account} not found.")
        if refusal is not None:
            return google_error(403, "PERMISSION_DENIED", _DENIED, _denied_details())
        seconds = state.lifetime_seconds or int(lifetime.group(1))
        # Whole seconds, as Google writes expireTime.
        expires = int(time.time()) + seconds
        token = f"ya29.standin-{account.split('@')[0]}-{len(state.minted) + 1}"
        state.minted[token] = MintedToken(token, account, expires)
        stamp = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return web.json_response({"accessToken": token, "expireTime": stamp})

    async def _summary(self, request: web.Request) -> web.Response:
        """The sandbox's panel: which accounts were asked for and which are refused."""
        state = self.state
        asked = [{"account": r.account, "status": r.status} for r in state.requests]
        return web.json_response({"requests": asked, "refusals": state.refusals})

    async def _set_refusal(self, request: web.Request) -> web.Response:
        """{account, refuse: "PERMISSION_DENIED" | "NOT_FOUND" | "UNAVAILABLE" | null}"""
        item = await request.json()
        account, how = str(item["account"]), item.get("refuse")
        if how is None:
            self.state.accept(account)
        elif how in ("PERMISSION_DENIED", "NOT_FOUND", "UNAVAILABLE"):
            self.state.refuse(account, how)
        else:
            return google_error(400, "INVALID_ARGUMENT", f"unknown refusal {how!r}")
        return web.json_response({"refusals": self.state.refusals})


def _denied_details() -> list[dict[str, Any]]:
    return [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "IAM_PERMISSION_DENIED",
            "domain": "iam.googleapis.com",
            "metadata": {"permission": "iam.serviceAccounts.getAccessToken"},
        }
    ]
