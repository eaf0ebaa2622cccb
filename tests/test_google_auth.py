"""Google credentials: every kind of ADC finds its tokens, sends them and refreshes them;
anonymous sends none."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.google.credentials import GoogleTokens
from bot.standins.operations_api import OperationsStandIn
from bot.standins.runner import BackgroundServer
from bot.standins.slack_api import SlackStandIn
from tests.bot_process import BotProcess
from tests.conftest import DEFAULT_ALLOWLIST, ONCALL, SIGNING_SECRET, RunningBot
from tests.forwarding_proxy import Carried, ForwardingProxy
from tests.google_auth_standins import (
    CLOUD_PLATFORM,
    IAM_SCOPE,
    JWT_BEARER,
    JWT_TOKEN_TYPE,
    SA_EMAIL,
    GcloudUser,
    MetadataServer,
    TokenEndpoint,
    write_service_account_key,
)
from tests.listeners.flow import OP, confirm, open_modal, seed, shown_modal
from tests.slack_driver import SlackDriver, wait_for
from tests.test_startup import base_env, run_bot
from tests.tls_certs import LocalAuthority


def test_adc_tokens_are_fetched_once_and_sent_as_bearer(
    service_account: Path,
    start_bot: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
) -> None:
    seed(google)
    running = start_bot(tokens=GoogleTokens.from_adc())
    confirm(running, open_modal(running, slack, ONCALL), ONCALL)
    wait_for(lambda: len(slack.state.messages) >= 2)
    assert [r.authorization for r in google.state.requests] == [f"Bearer {google.access_token}"] * 2
    assert google.state.tokens_issued == 1


def test_anonymous_sends_no_credentials(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    open_modal(running, slack, ONCALL)
    assert [r.authorization for r in google.state.requests] == [""]


def test_concurrent_callers_share_one_refresh(
    service_account: Path, google: OperationsStandIn
) -> None:
    tokens = GoogleTokens.from_adc()

    async def many() -> list[dict[str, str]]:
        return await asyncio.gather(*(tokens.headers() for _ in range(20)))

    headers = asyncio.run(many())
    assert {h["Authorization"] for h in headers} == {f"Bearer {google.access_token}"}
    assert google.state.tokens_issued == 1


# Every kind of Application Default Credentials, against stand-ins of where its tokens
# come from. The first token lives 1 s (already stale, to google-auth), so the cancel that
# follows the modal's GET must carry a new one; the polls after it reuse that one.

AUDIENCE = (
    "//iam.googleapis.com/projects/123456789/locations/global/"
    "workloadIdentityPools/ci-pool/providers/ci-provider"
)


@pytest.fixture
def no_ambient_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No key file, an empty gcloud configuration, no metadata server: only what the test
    puts there is found. Returns the gcloud configuration directory."""
    gcloud = tmp_path / "gcloud"
    gcloud.mkdir()
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(gcloud))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:1")
    return gcloud


@pytest.fixture
def token_endpoint() -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint()
    server = BackgroundServer(endpoint.make_app).start()
    endpoint.url = server.url
    yield endpoint
    server.stop()


@pytest.fixture
def key_file(
    no_ambient_credentials: Path,
    token_endpoint: TokenEndpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> TokenEndpoint:
    """ADC from a service-account key file whose token_uri is the local token endpoint."""
    key = write_service_account_key(
        tmp_path / "key.json", token_endpoint, f"{token_endpoint.url}/token"
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    return token_endpoint


@pytest.fixture
def tokens_carried_by_a_cancel(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> Callable[[], list[str]]:
    """Confirms a cancel, waits for a poll after it, and returns the token each Google
    call carried."""

    def run() -> list[str]:
        seed(google)
        running = start_bot(tokens=GoogleTokens.from_adc(), POLL_INITIAL_SECONDS="0.1")
        confirm(running, open_modal(running, slack, ONCALL), ONCALL)
        wait_for(lambda: len(google.state.requests) >= 3, what="a poll after the cancel")
        return [r.authorization.removeprefix("Bearer ") for r in google.state.requests]

    return run


def test_a_service_account_key_file_signs_its_jwt_and_refreshes(
    key_file: TokenEndpoint, tokens_carried_by_a_cancel: Callable[[], list[str]]
) -> None:
    key_file.tokens.lifetimes.append(1)
    carried = tokens_carried_by_a_cancel()
    assert carried[:2] == ["access-token-1", "access-token-2"]
    assert set(carried[2:]) == {"access-token-2"}
    assert key_file.grants == [JWT_BEARER, JWT_BEARER]


def test_a_token_refresh_that_hangs_holds_up_nothing_else(
    key_file: TokenEndpoint,
    start_bot: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
) -> None:
    running = start_bot(tokens=GoogleTokens.from_adc())
    seed(google)
    key_file.answering.clear()
    try:
        assert running.driver.command(OP, user=ONCALL).status_code == 200
        wait_for(lambda: key_file.arrived, what="the refresh to reach the token endpoint")
        # The refresh waits in a thread of its own: the event loop answers everyone else.
        answer = running.driver.command("help", user=ONCALL)
        assert "/cancel-op projects/PROJECT/locations/LOCATION" in answer.text
    finally:
        key_file.answering.set()
    assert "op-123" in str(shown_modal(slack))
    assert [r.authorization for r in google.state.requests] == ["Bearer access-token-1"]


@pytest.mark.usefixtures("no_ambient_credentials")
@pytest.mark.parametrize("impersonate", [False, True], ids=["direct", "impersonating"])
def test_workload_identity_federation_exchanges_the_subject_token(
    impersonate: bool,
    token_endpoint: TokenEndpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tokens_carried_by_a_cancel: Callable[[], list[str]],
) -> None:
    subject = tmp_path / "oidc-token"
    subject.write_text("eyJhbGciOiJSUzI1NiJ9.ci-oidc-token.sig")
    token_endpoint.subject_tokens[subject.read_text()] = AUDIENCE
    config: dict[str, object] = {
        "type": "external_account", "audience": AUDIENCE,
        "subject_token_type": JWT_TOKEN_TYPE, "token_url": f"{token_endpoint.url}/sts",
        "credential_source": {"file": str(subject)},
    }  # fmt: skip
    if impersonate:
        config["service_account_impersonation_url"] = (
            f"{token_endpoint.url}/v1/projects/-/serviceAccounts/{SA_EMAIL}:generateAccessToken"
        )
    (tmp_path / "wif.json").write_text(json.dumps(config))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "wif.json"))
    # Else google-auth asks Cloud Resource Manager on the internet for the project.
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
    token_endpoint.tokens.lifetimes.extend([1, 1] if impersonate else [1])
    carried = tokens_carried_by_a_cancel()
    # Impersonating, each refresh is an exchange and then a generateAccessToken.
    first, second = ("access-token-2", "access-token-4") if impersonate else (
        "access-token-1", "access-token-2")  # fmt: skip
    assert carried[:2] == [first, second]
    assert set(carried[2:]) == {second}
    assert token_endpoint.impersonated == ([SA_EMAIL] * 2 if impersonate else [])
    assert token_endpoint.exchanged_scopes == [IAM_SCOPE if impersonate else CLOUD_PLATFORM] * 2


def test_gcloud_user_credentials_refresh_at_googles_token_endpoint_through_the_proxy(
    no_ambient_credentials: Path,
    token_endpoint: TokenEndpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tokens_carried_by_a_cancel: Callable[[], list[str]],
) -> None:
    # google-auth always sends refresh tokens to https://oauth2.googleapis.com/token, so
    # the stand-in is that host, over TLS, behind a proxy as in a locked-down network.
    authority = LocalAuthority(tmp_path)
    tls = BackgroundServer(
        token_endpoint.make_app, ssl_context=authority.server_context("oauth2.googleapis.com")
    ).start()
    proxy = ForwardingProxy({"oauth2.googleapis.com": tls.port}).start()
    try:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("SSL_CERT_FILE", str(authority.bundle))
        token_endpoint.users["1//refresh-token"] = GcloudUser(
            "client-1.apps.googleusercontent.com", "client-secret", "1//refresh-token"
        )
        # What `gcloud auth application-default login` writes.
        (no_ambient_credentials / "application_default_credentials.json").write_text(
            json.dumps({
                "type": "authorized_user", "client_id": "client-1.apps.googleusercontent.com",
                "client_secret": "client-secret", "refresh_token": "1//refresh-token",
                "quota_project_id": "test-project",
            })
        )  # fmt: skip
        token_endpoint.tokens.lifetimes.append(1)
        carried = tokens_carried_by_a_cancel()
    finally:
        proxy.stop()
        tls.stop()
    assert carried[:2] == ["access-token-1", "access-token-2"]
    assert set(carried[2:]) == {"access-token-2"}
    assert token_endpoint.grants == ["refresh_token", "refresh_token"]
    # (Slack's SDK sends response_url posts to HTTPS_PROXY whatever their scheme.)
    tunnels = [c for c in proxy.carried if c.method == "CONNECT"]
    assert tunnels and set(tunnels) == {Carried("CONNECT", "oauth2.googleapis.com:443")}


@pytest.fixture
def metadata_server() -> Iterator[tuple[MetadataServer, str]]:
    standin = MetadataServer()
    server = BackgroundServer(standin.make_app).start()
    yield standin, f"localhost:{server.port}"
    server.stop()


def test_on_cloud_run_gke_or_gce_tokens_come_from_the_metadata_server(
    tmp_path: Path,
    metadata_server: tuple[MetadataServer, str],
    slack_server: tuple[SlackStandIn, BackgroundServer],
    google_server: tuple[OperationsStandIn, BackgroundServer],
    slack: SlackStandIn,
    google: OperationsStandIn,
    redis_url: str,
) -> None:
    metadata, address = metadata_server
    metadata.tokens.lifetimes.append(1)  # stale at once: the cancel needs a new token
    (tmp_path / "allowlist.yaml").write_text(DEFAULT_ALLOWLIST)
    env = base_env(
        tmp_path, GOOGLE_AUTH="adc", NO_GCE_CHECK="", GCE_METADATA_HOST=address,
        GCE_METADATA_IP=address, CLOUDSDK_CONFIG=str(tmp_path / "gcloud"), REDIS_URL=redis_url,
        SLACK_API_URL=f"{slack_server[1].url}/api/", POLL_INITIAL_SECONDS="0.1",
        OPERATIONS_API_URL=f"{google_server[1].url}/v1",
        # A proxy that answers nothing, for all but 127.0.0.1 (Slack's and the Operations
        # API's stand-ins); the metadata server, at localhost, is reached around any proxy.
        HTTP_PROXY="http://127.0.0.1:1", NO_PROXY="127.0.0.1",
    )  # fmt: skip
    bot = BotProcess(env, "serve")
    driver = SlackDriver(f"http://127.0.0.1:{env['PORT']}", SIGNING_SECRET, slack_server[1].url)
    try:
        bot.wait_until_healthy(env["PORT"])
        seed(google)
        assert driver.command(OP, user=ONCALL).status_code == 200
        assert driver.submit(shown_modal(slack), user=ONCALL).status_code == 200
        wait_for(lambda: len(google.state.requests) >= 3, what="a poll after the cancel")
    finally:
        driver.close()
        assert bot.stop() == 0, bot.lines
    carried = [r.authorization for r in google.state.requests]
    assert carried[:2] == ["Bearer metadata-token-1", "Bearer metadata-token-2"]
    assert set(carried[2:]) == {"Bearer metadata-token-2"}
    assert metadata.tokens.issued == ["metadata-token-1", "metadata-token-2"]
    assert metadata.token_scopes == [CLOUD_PLATFORM] * 2
    # Nothing about a Compute Engine library that failed to import, or anything else.
    assert bot.warnings() == []


def test_without_any_credentials_start_up_says_so_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "allowlist.yaml").write_text(DEFAULT_ALLOWLIST)
    # No key file, an empty gcloud configuration, and nothing where the metadata server is.
    env = base_env(tmp_path, GOOGLE_AUTH="adc", NO_GCE_CHECK="",
                   CLOUDSDK_CONFIG=str(tmp_path / "gcloud"))  # fmt: skip
    result = run_bot(env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("cancel-op: GOOGLE_AUTH: adc: no Application Default")
    assert "gcloud auth application-default login" in result.stderr
