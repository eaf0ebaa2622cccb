"""Stand-ins for where Google credentials come from, over real HTTP on 127.0.0.1.

`MetadataServer` plays the metadata server of Cloud Run, GKE and GCE (reached through
GCE_METADATA_HOST / GCE_METADATA_IP); `TokenEndpoint` plays oauth2.googleapis.com/token
(service-account JWTs, gcloud's refresh tokens), sts.googleapis.com (workload identity
federation) and IAM Credentials' generateAccessToken. Each checks what the real one checks
and answers errors in the real one's shape; tokens are numbered, with lifetimes the test
chooses, so a test can tell which token each request carried.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SA_EMAIL = "cancel-op@test-project.iam.gserviceaccount.com"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
IAM_SCOPE = "https://www.googleapis.com/auth/iam"  # asked for a token that impersonates
# A service account's JWT names this audience wherever the key's token_uri points.
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
_FLAVOR = {"Metadata-Flavor": "Google"}


@dataclass
class Issuer:
    """Numbered access tokens; each one lives for the next of `lifetimes` (then 3600 s).
    google-auth treats a token as expired 3 min 45 s early, so a lifetime of 1 s makes the
    next request fetch a new one."""

    prefix: str
    lifetimes: deque[int] = field(default_factory=deque)
    issued: list[str] = field(default_factory=list)

    def issue(self) -> tuple[str, int]:
        token = f"{self.prefix}-{len(self.issued) + 1}"
        self.issued.append(token)
        return token, self.lifetimes.popleft() if self.lifetimes else 3600


class MetadataServer:
    """Answers only requests with `Metadata-Flavor: Google` and without X-Forwarded-For,
    as the real one does to keep proxied requests out."""

    def __init__(self, email: str = SA_EMAIL) -> None:
        self.email = email
        self.tokens = Issuer("metadata-token")
        self.token_scopes: list[str] = []

    async def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._flavor_required])
        app.router.add_get("/", self._root)
        root = "/computeMetadata/v1"
        app.router.add_get(f"{root}/project/project-id", self._project)
        app.router.add_get(f"{root}/instance/service-accounts/{{account}}/", self._account)
        app.router.add_get(f"{root}/instance/service-accounts/{{account}}/token", self._token)
        return app

    @web.middleware
    async def _flavor_required(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Metadata-Flavor") != "Google":
            return web.Response(status=403, text="Missing required header: Metadata-Flavor")
        if "X-Forwarded-For" in request.headers:
            return web.Response(status=403, text="Request denied: X-Forwarded-For present")
        response: web.StreamResponse = await handler(request)
        response.headers.update(_FLAVOR)
        return response

    async def _root(self, request: web.Request) -> web.Response:
        return web.Response(text="computeMetadata/\n", content_type="application/text")

    async def _project(self, request: web.Request) -> web.Response:
        return web.Response(text="test-project", content_type="application/text")

    def _knows(self, request: web.Request) -> bool:
        """An account is named `default` or by its email, as on the real server."""
        return request.match_info["account"] in ("default", self.email)

    async def _account(self, request: web.Request) -> web.Response:
        if not self._knows(request):
            return web.Response(status=404, text="Not Found")
        return web.json_response(
            {"aliases": ["default"], "email": self.email, "scopes": [CLOUD_PLATFORM]}
        )

    async def _token(self, request: web.Request) -> web.Response:
        if not self._knows(request):
            return web.Response(status=404, text="Not Found")
        self.token_scopes.append(request.query.get("scopes", ""))
        token, lifetime = self.tokens.issue()
        return web.json_response(
            {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}
        )


@dataclass
class ServiceAccountKey:
    email: str
    key_id: str
    private_key: rsa.RSAPrivateKey


@dataclass
class GcloudUser:
    client_id: str
    client_secret: str
    refresh_token: str


class TokenEndpoint:
    """`/token`: service-account JWT assertions and refresh tokens; `/sts`: token
    exchange of a subject token; `/v1/...:generateAccessToken`: impersonation."""

    def __init__(self) -> None:
        self.tokens = Issuer("access-token")
        self.url = ""  # where it is served, for the credential files that point at it
        self.service_accounts: dict[str, ServiceAccountKey] = {}
        self.users: dict[str, GcloudUser] = {}
        self.subject_tokens: dict[str, str] = {}  # subject token -> audience it is for
        self.exchanged_scopes: list[str] = []
        # Cleared, `/token` holds its answers until it is set again: a token endpoint that hangs.
        self.answering = threading.Event()
        self.answering.set()
        self.arrived = 0  # requests that reached `/token`, answered or held
        self.grants: list[str] = []  # grant_type of every accepted token request
        self.impersonated: list[str] = []  # accounts a token was generated for

    async def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/sts", self._exchange)
        app.router.add_post(
            "/v1/projects/-/serviceAccounts/{account}:generateAccessToken", self._impersonate
        )
        return app

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.arrived += 1
        await asyncio.to_thread(self.answering.wait, 60)
        grant = str(form.get("grant_type", ""))
        if grant == JWT_BEARER:
            problem = self._check_assertion(str(form.get("assertion", "")))
        elif grant == "refresh_token":
            problem = self._check_refresh(form)
        else:
            problem = f"Invalid grant_type: {grant}"
        if problem:
            return _oauth_error("invalid_grant", problem)
        return self._issue(grant)

    def _check_assertion(self, assertion: str) -> str:
        try:
            head, body, signature = assertion.split(".")
            header, claims = _b64json(head), _b64json(body)
        except ValueError:
            return "Invalid JWT: not three base64url JSON parts"
        key = self.service_accounts.get(str(claims.get("iss")))
        if key is None:
            return "Invalid JWT Signature."
        if header.get("alg") != "RS256" or header.get("kid") != key.key_id:
            return "Invalid JWT: wrong alg or kid"
        try:
            key.private_key.public_key().verify(
                _b64decode(signature),
                f"{head}.{body}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return "Invalid JWT Signature."
        issued, expires = claims.get("iat", 0), claims.get("exp", 0)
        if claims.get("aud") != GOOGLE_TOKEN_URI:
            return "Invalid JWT: audience is not Google's token endpoint"
        if not (issued - 300 <= time.time() < expires and expires - issued <= 3600):
            return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe"
        # cloud-platform for the bot's own calls; iam for the token that impersonates.
        if not {CLOUD_PLATFORM, IAM_SCOPE} & set(str(claims.get("scope", "")).split()):
            return "Invalid OAuth scope or ID token audience provided."
        return ""

    def _check_refresh(self, form: Any) -> str:
        user = self.users.get(str(form.get("refresh_token", "")))
        if user is None:
            return "Bad Request"
        if (form.get("client_id"), form.get("client_secret")) != (
            user.client_id,
            user.client_secret,
        ):
            return "Unauthorized"
        return ""

    async def _exchange(self, request: web.Request) -> web.Response:
        form = await request.post()
        expected = self.subject_tokens.get(str(form.get("subject_token", "")))
        if form.get("grant_type") != TOKEN_EXCHANGE:
            return _oauth_error("invalid_request", "Invalid value for grant_type.")
        if form.get("requested_token_type") != ACCESS_TOKEN_TYPE:
            return _oauth_error("invalid_request", "Invalid value for requested_token_type.")
        if form.get("subject_token_type") != JWT_TOKEN_TYPE:
            return _oauth_error("invalid_request", "Invalid value for subject_token_type.")
        if expected is None or form.get("audience") != expected:
            return _oauth_error("invalid_grant", "The audience in ID Token does not match.")
        scope = str(form.get("scope", ""))
        if not scope or not set(scope.split()) <= {CLOUD_PLATFORM, IAM_SCOPE}:
            return _oauth_error("invalid_scope", "Invalid scope.")
        self.exchanged_scopes.append(scope)
        token, lifetime = self.tokens.issue()
        self.grants.append(TOKEN_EXCHANGE)
        return web.json_response(
            {"access_token": token, "issued_token_type": ACCESS_TOKEN_TYPE,
             "token_type": "Bearer", "expires_in": lifetime}
        )  # fmt: skip

    async def _impersonate(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization", "") not in {
            f"Bearer {t}" for t in self.tokens.issued
        }:
            return _rpc_error(
                401, "UNAUTHENTICATED", "Request had invalid authentication credentials."
            )
        body = await request.json()
        if body.get("scope") != [CLOUD_PLATFORM]:
            return _rpc_error(400, "INVALID_ARGUMENT", "Invalid scope.")
        token, lifetime = self.tokens.issue()
        self.impersonated.append(request.match_info["account"])
        expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lifetime)
        return web.json_response(
            {"accessToken": token, "expireTime": expires.isoformat().replace("+00:00", "Z")}
        )

    def _issue(self, grant: str) -> web.Response:
        token, lifetime = self.tokens.issue()
        self.grants.append(grant)
        return web.json_response(
            {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}
        )


def _oauth_error(error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=400)


def _rpc_error(status: int, rpc_status: str, message: str) -> web.Response:
    body = {"error": {"code": status, "message": message, "status": rpc_status}}
    return web.json_response(body, status=status)


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64json(part: str) -> dict[str, Any]:
    value = json.loads(_b64decode(part))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def write_service_account_key(path: Path, endpoint: TokenEndpoint, token_uri: str) -> Path:
    """A key file as the console downloads it, its key known to `endpoint`."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    endpoint.service_accounts[SA_EMAIL] = ServiceAccountKey(SA_EMAIL, "key-1", key)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "test-project", "private_key_id": "key-1",
        "private_key": pem, "client_email": SA_EMAIL, "client_id": "1", "token_uri": token_uri,
    }))  # fmt: skip
    return path
