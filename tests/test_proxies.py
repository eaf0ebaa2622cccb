"""HTTP_PROXY, HTTPS_PROXY and NO_PROXY decide the route of every call to Slack and Google.

A whole cancel runs through `python -m bot serve` with Slack, the Operations API and the
OAuth token endpoint under host names that only the forwarding proxy resolves: a call that
went around the proxy could not reach them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yarl

from bot.runtime.proxies import EnvironmentProxies
from bot.standins.operations_api import OperationsStandIn
from bot.standins.runner import BackgroundServer
from bot.standins.slack_api import SlackStandIn
from tests.bot_process import BotProcess
from tests.conftest import DEFAULT_ALLOWLIST, ONCALL, SIGNING_SECRET
from tests.forwarding_proxy import ForwardingProxy
from tests.google_auth_standins import TokenEndpoint, write_service_account_key
from tests.listeners.flow import OP, seed, shown_modal
from tests.slack_driver import SlackDriver, wait_for
from tests.test_startup import base_env
from tests.tls_certs import LocalAuthority

SLACK_HOST, GOOGLE_HOST, OAUTH_HOST = (
    "slack.internal.test",
    "ops.internal.test",
    "oauth.internal.test",
)


@dataclass
class Route:
    scheme: str  # of every URL the bot is given
    proxy_setting: str  # HTTP_PROXY or HTTPS_PROXY
    exempt: str = ""  # the host given by its address, 127.0.0.1, which NO_PROXY exempts
    credentials: str = ""  # that the proxy requires, given in the proxy setting's URL


ROUTES = {
    "http-absolute-form": Route("http", "HTTP_PROXY"),
    "https-connect": Route("https", "HTTPS_PROXY"),
    "https-connect-with-credentials": Route("https", "HTTPS_PROXY", credentials="bot:s@cret"),
    "http-with-credentials": Route("http", "HTTP_PROXY", credentials="bot:s@cret"),
    "no-proxy-exempts-google": Route("http", "HTTP_PROXY", exempt=GOOGLE_HOST),
    "no-proxy-exempts-slack": Route("http", "HTTP_PROXY", exempt=SLACK_HOST),
}


@pytest.fixture
def token_endpoint() -> TokenEndpoint:
    return TokenEndpoint()


@pytest.fixture
def servers(
    route: Route,
    tmp_path: Path,
    slack: SlackStandIn,
    google: OperationsStandIn,
    token_endpoint: TokenEndpoint,
) -> Iterator[dict[str, BackgroundServer]]:
    """Slack, Google and the token endpoint, over TLS with certificates for their names
    when the route is https."""
    authority = LocalAuthority(tmp_path) if route.scheme == "https" else None
    started: dict[str, BackgroundServer] = {}
    for host, make_app in ((SLACK_HOST, slack.make_app), (GOOGLE_HOST, google.make_app),
                           (OAUTH_HOST, token_endpoint.make_app)):  # fmt: skip
        context = authority.server_context(host) if authority else None
        started[host] = BackgroundServer(make_app, ssl_context=context).start()
    yield started
    for server in started.values():
        server.stop()


@pytest.mark.parametrize("route", ROUTES.values(), ids=ROUTES.keys())
def test_a_whole_cancel_goes_through_the_proxy(
    route: Route,
    servers: dict[str, BackgroundServer],
    token_endpoint: TokenEndpoint,
    slack: SlackStandIn,
    google: OperationsStandIn,
    tmp_path: Path,
    redis_url: str,
) -> None:
    names = {host: server.port for host, server in servers.items()}
    proxy = ForwardingProxy(names, credentials=route.credentials).start()
    origin = {host: f"{route.scheme}://{host}" for host in servers}
    if route.exempt:
        origin[route.exempt] = servers[route.exempt].url
    (tmp_path / "allowlist.yaml").write_text(DEFAULT_ALLOWLIST)
    env = base_env(
        tmp_path, REDIS_URL=redis_url, POLL_INITIAL_SECONDS="0.1",
        SLACK_API_URL=f"{origin[SLACK_HOST]}/api/", OPERATIONS_API_URL=f"{origin[GOOGLE_HOST]}/v1",
        GOOGLE_AUTH="adc", CLOUDSDK_CONFIG=str(tmp_path / "gcloud"),
        GOOGLE_APPLICATION_CREDENTIALS=str(write_service_account_key(
            tmp_path / "key.json", token_endpoint, f"{origin[OAUTH_HOST]}/token")),
        NO_PROXY="127.0.0.1",
        SSL_CERT_FILE=str(tmp_path / "ca.pem") if route.scheme == "https" else "",
        **{route.proxy_setting: proxy.url},
    )  # fmt: skip
    bot = BotProcess(env, "serve")
    driver = SlackDriver(f"http://127.0.0.1:{env['PORT']}", SIGNING_SECRET, origin[SLACK_HOST])
    try:
        bot.wait_until_healthy(env["PORT"])
        seed(google)
        assert driver.command(OP, user=ONCALL).status_code == 200
        assert driver.submit(shown_modal(slack), user=ONCALL).status_code == 200
        wait_for(lambda: google.state.requests_for(OP, "cancel")
                 and slack.state.calls_to("chat.postMessage"), what="cancel and post")  # fmt: skip
    finally:
        driver.close()
        code = bot.stop()
        proxy.stop()
    assert code == 0, bot.lines
    assert google.state.requests[0].authorization == "Bearer access-token-1"
    # The exempt host went direct: the proxy carried nothing to it, nor to 127.0.0.1.
    assert proxy.hosts() == set(servers) - {route.exempt}
    if route.scheme == "https":
        assert {c.method for c in proxy.carried} == {"CONNECT"}
    else:
        assert "CONNECT" not in {c.method for c in proxy.carried}


@pytest.mark.parametrize(
    ("settings", "url", "proxy"),
    [
        ({"HTTP_PROXY": "http://p:3128"}, "http://ops.example/v1", "http://p:3128"),
        ({"HTTP_PROXY": "http://p:3128"}, "https://ops.example/v1", None),
        ({"HTTPS_PROXY": "http://p:3128"}, "https://ops.example/v1", "http://p:3128"),
        ({"HTTPS_PROXY": "http://p:3128"}, "http://ops.example/v1", None),
        ({"https_proxy": "http://p:3128"}, "https://ops.example/v1", "http://p:3128"),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "example"}, "https://ops.example/", None),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".example"}, "https://ops.example/", None),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "other.example"}, "https://ops.example/",
         "http://p:3128"),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "*"}, "https://ops.example/", None),
        ({"HTTP_PROXY": "http://p:3128", "NO_PROXY": "localhost,127.0.0.1"},
         "http://127.0.0.1:8080/", None),
    ],
)  # fmt: skip
def test_the_proxy_is_chosen_by_scheme_and_no_proxy_as_curl_does(
    settings: dict[str, str], url: str, proxy: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    chosen, credentials = EnvironmentProxies().proxy_for(yarl.URL(url))
    assert (str(chosen) if chosen else None) == proxy
    assert credentials is None


def test_a_proxys_credentials_are_sent_apart_from_its_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://cancel-op:s%40cret@proxy.corp:3128")
    chosen, credentials = EnvironmentProxies().proxy_for(yarl.URL("https://slack.com/api/"))
    assert str(chosen) == "http://proxy.corp:3128"
    assert credentials == aiohttp.BasicAuth("cancel-op", "s@cret")
