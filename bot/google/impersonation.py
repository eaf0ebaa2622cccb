"""Short-lived tokens for the service accounts the allowlist's bindings impersonate.

Each comes from the IAM Service Account Credentials API's generateAccessToken, authorised
by the bot's own credentials (google-auth's impersonated credentials), or by none with
GOOGLE_AUTH=anonymous. Tokens are kept per account until 5 minutes before they expire;
callers that need one at the same time share one request.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import google.auth.exceptions
import google.auth.transport
from google.auth import impersonated_credentials

from bot.google.credentials import CLOUD_PLATFORM_SCOPE, GoogleTokens, TokenSource
from bot.google.rpc import RpcCode
from bot.runtime import metrics

log = logging.getLogger(__name__)

LIFETIME_SECONDS = 3600
# A token is used until this long before its expireTime, so none expires on its way.
REFRESH_BEFORE = datetime.timedelta(minutes=5)
# generateAccessToken is one small POST; past this it is as good as unanswered.
MINT_SECONDS = 10.0
MESSAGE_MAX_CHARS = 500


class TokenUnavailable(Exception):
    """The IAM Credentials API gave no token for `account`, as a google.rpc code."""

    def __init__(self, account: str, code: RpcCode, message: str) -> None:
        super().__init__(f"{code.name}: no token for {account}: {message}")
        self.account = account
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires: datetime.datetime  # aware, UTC

    def fresh(self, now: datetime.datetime) -> bool:
        return now < self.expires - REFRESH_BEFORE


class TokenMinter(Protocol):
    async def mint(self, account: str) -> AccessToken:
        """A new token for `account`; raises TokenUnavailable."""
        ...


def generate_access_token_url(base_url: str, account: str) -> str:
    return f"{base_url}/projects/-/serviceAccounts/{quote(account, safe='@')}:generateAccessToken"


class AccountTokens:
    """Authorization headers per service account, minted once and kept until nearly expired."""

    def __init__(self, minter: TokenMinter) -> None:
        self._minter = minter
        self._tokens: dict[str, AccessToken] = {}
        self._minting: dict[str, asyncio.Task[AccessToken]] = {}

    async def headers(self, account: str) -> dict[str, str]:
        """Raises TokenUnavailable; nothing is cached then, so the next call asks again."""
        token = self._tokens.get(account)
        if token is None or not token.fresh(_now()):
            token = await self._shared_mint(account)
        return {"Authorization": f"Bearer {token.token}"}

    async def _shared_mint(self, account: str) -> AccessToken:
        task = self._minting.get(account)
        if task is None:
            task = asyncio.ensure_future(self._mint(account))
            task.add_done_callback(_consume_outcome)
            self._minting[account] = task
        # Shielded: a caller cut short by its own deadline leaves the mint to the others.
        return await asyncio.shield(task)

    async def _mint(self, account: str) -> AccessToken:
        try:
            token = await self._minter.mint(account)
        except TokenUnavailable as exc:
            metrics.count_token_request(exc.code.name)
            raise
        else:
            metrics.count_token_request("OK")
            self._tokens[account] = token
            return token
        finally:
            del self._minting[account]


def _consume_outcome(task: asyncio.Task[AccessToken]) -> None:
    """A mint whose every caller gave up (their deadlines): its failure is no surprise."""
    if not task.cancelled():
        task.exception()


class AnonymousMinter:
    """GOOGLE_AUTH=anonymous (emulators, the sandbox): the bot's own POST, with no
    credentials, since google-auth refuses to refresh from anonymous credentials."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self._http = http
        self._base_url = base_url

    async def mint(self, account: str) -> AccessToken:
        url = generate_access_token_url(self._base_url, account)
        try:
            async with (
                asyncio.timeout(MINT_SECONDS),
                self._http.post(url, json=_request_body(), allow_redirects=False) as response,
            ):
                content = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unreachable(account, exc) from exc
        return _token_from_answer(account, response.status, content)


class GoogleAuthMinter:
    """google-auth's impersonated credentials over the bot's own (ADC) credentials and the
    httpx transport they already use; each refresh runs in a worker thread."""

    def __init__(self, source: GoogleTokens, base_url: str) -> None:
        self._source = source
        self._base_url = base_url
        self._credentials: dict[str, impersonated_credentials.Credentials] = {}

    async def mint(self, account: str) -> AccessToken:
        credentials = self._credentials.get(account)
        if credentials is None:
            credentials = impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
                source_credentials=self._source.credentials,
                target_principal=account,
                target_scopes=[CLOUD_PLATFORM_SCOPE],
                lifetime=LIFETIME_SECONDS,
                iam_endpoint_override=generate_access_token_url(self._base_url, account),
            )
            self._credentials[account] = credentials
        return await asyncio.to_thread(self._refresh, account, credentials)

    def _refresh(
        self, account: str, credentials: impersonated_credentials.Credentials
    ) -> AccessToken:
        request = _LastAnswer(self._source.request)
        try:
            credentials.refresh(request)  # type: ignore[no-untyped-call]
        except google.auth.exceptions.TransportError as exc:
            cause = exc.__cause__  # the transport's own deadline, when it ran out
            raise _unreachable(account, cause if isinstance(cause, TimeoutError) else exc) from exc
        except google.auth.exceptions.GoogleAuthError as exc:
            url = generate_access_token_url(self._base_url, account)
            if request.url != url:  # the bot's own credentials failed before the IAM call
                raise TokenUnavailable(
                    account, RpcCode.UNAUTHENTICATED, f"{type(exc).__name__} refreshing its own"
                ) from exc
            if request.status == 200:
                raise _no_token(account) from exc
            # google-auth keeps the answer's body as the error's second argument.
            body = exc.args[1] if len(exc.args) > 1 else ""
            raw = body.encode() if isinstance(body, str) else b""
            raise _refused(account, request.status, raw) from exc
        expiry = credentials.expiry  # naive UTC, as google-auth keeps it
        if not credentials.token or expiry is None:
            raise _no_token(account)
        return AccessToken(str(credentials.token), expiry.replace(tzinfo=datetime.UTC))


def minter_for(source: TokenSource, http: aiohttp.ClientSession, base_url: str) -> TokenMinter:
    """google-auth's impersonation over real credentials; the bare POST without any."""
    if isinstance(source, GoogleTokens):
        return GoogleAuthMinter(source, base_url)
    return AnonymousMinter(http, base_url)


class _LastAnswer(google.auth.transport.Request):
    """The transport, noting where the last request went and how it was answered: google-auth's
    errors carry the body but not the HTTP status the google.rpc code depends on."""

    def __init__(self, request: google.auth.transport.Request) -> None:
        self._request = request
        self.url = ""
        self.status = 0

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> google.auth.transport.Response:
        self.url, self.status = url, 0
        response: google.auth.transport.Response = self._request(
            url, method, body, headers, timeout or MINT_SECONDS, **kwargs
        )
        self.status = response.status
        return response


def _request_body() -> dict[str, Any]:
    return {"scope": [CLOUD_PLATFORM_SCOPE], "lifetime": f"{LIFETIME_SECONDS}s"}


def _token_from_answer(account: str, status: int, content: bytes) -> AccessToken:
    """generateAccessToken's answer read as google-auth reads it: 200 with accessToken and
    expireTime (RFC 3339, whole seconds, Z); anything else is refused with its code."""
    if status != 200:
        raise _refused(account, status, content)
    try:
        answer = json.loads(content)
        token = answer["accessToken"]
        expires = datetime.datetime.strptime(answer["expireTime"], "%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, KeyError, TypeError) as exc:
        raise _no_token(account) from exc
    if not isinstance(token, str) or not token:
        raise _no_token(account)
    return AccessToken(token, expires.replace(tzinfo=datetime.UTC))


def _no_token(account: str) -> TokenUnavailable:
    """A 200 without a token and its expiry: whether the account may be used is unknown."""
    return TokenUnavailable(
        account, RpcCode.UNKNOWN, "the IAM Credentials API's answer had no token in it"
    )


def _refused(account: str, status: int, content: bytes) -> TokenUnavailable:
    """The code of a refusal: Google's `status` name within the HTTP status's class."""
    try:
        payload = json.loads(content)
    except ValueError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    error = error if isinstance(error, dict) else {}
    code = RpcCode.from_error_answer(error.get("status"), status)
    message = error.get("message")
    text = message[:MESSAGE_MAX_CHARS] if isinstance(message, str) and message else ""
    log.warning("no token for a service account",
                extra={"account": account, "http_status": status, "code": code.name})  # fmt: skip
    return TokenUnavailable(account, code, text or f"HTTP {status}")


def _unreachable(account: str, exc: Exception) -> TokenUnavailable:
    """Plain words for Slack; the exception only in the log."""
    log.warning("iam credentials api unreachable",
                extra={"account": account, "error": f"{type(exc).__name__}: {exc}"})  # fmt: skip
    if isinstance(exc, TimeoutError):
        return TokenUnavailable(
            account, RpcCode.DEADLINE_EXCEEDED, "the IAM Credentials API did not answer in time"
        )
    return TokenUnavailable(account, RpcCode.UNAVAILABLE, "could not reach the IAM Credentials API")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
