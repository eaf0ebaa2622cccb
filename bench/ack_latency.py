"""Slash-command acknowledgement latency: cancel-op beside a bare Bolt app, in one run.

Each app runs in a process of its own on 127.0.0.1; both talk to the same stand-in Slack,
and cancel-op reads a stand-in Operations API that answers slowly. The load generator
sends signed `/cancel-op` requests at a fixed concurrency and times each acknowledgement.

With `--pin` (the default on two cores or more) the app under test runs alone on the last
core and everything else (load generator, stand-ins, Redis) on the others, so the two
apps are compared on equal terms rather than on how the OS shares two cores among five
busy processes. Rounds alternate between the apps, with a pause after each so the work a
round leaves behind (cancel-op's `views.update` once Google answers) is done before the
next starts; each app's latencies are pooled over its rounds.

    python -m bench.ack_latency [--requests 2000] [--rounds 4] [--google-latency 5] [--no-pin]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench-token"
USER = "U0BENCH"
OP = "projects/prod-1/locations/global/operations/op-bench"
ALLOWLIST = (
    f"bindings:\n  - permission: cloudaicompanion.operations.cancel\n    members: [user:{USER}]\n"
)


# Processes: stand-ins, the bare app, cancel-op. Each prints its port on its first line.


def serve_standins(google_latency: float) -> None:
    from bot.standins.operations_api import FakeOperation, OperationsStandIn
    from bot.standins.runner import BackgroundServer
    from bot.standins.slack_api import SlackStandIn

    slack, google = SlackStandIn(), OperationsStandIn()
    google.state.add(FakeOperation(OP))
    google.state.latency_seconds = google_latency
    slack_server = BackgroundServer(slack.make_app).start()
    google_server = BackgroundServer(google.make_app).start()
    print(slack_server.port, google_server.port, flush=True)
    while True:
        time.sleep(1)
        # Keep the recorders from growing without bound over a long run.
        slack.state.calls.clear()
        google.state.requests.clear()


def serve_bare(slack_url: str) -> None:
    """What every Bolt app does at the least: ack, then open a view."""
    from aiohttp import web
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    app = AsyncApp(
        client=AsyncWebClient(token=TOKEN, base_url=f"{slack_url}/api/"), signing_secret=SECRET
    )

    @app.command("/cancel-op")
    async def handle(ack, command, client):  # type: ignore[no-untyped-def]
        await ack()
        await client.views_open(
            trigger_id=command["trigger_id"],
            # One block: Slack (and its stand-in) refuses a modal without any.
            view={"type": "modal", "title": {"type": "plain_text", "text": "x"},
                  "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]},
        )  # fmt: skip

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    web_app = web.Application()
    web_app.router.add_post("/slack/events", events)
    _run_aiohttp(web_app)


def serve_ours(slack_url: str, google_url: str, redis_url: str, allowlist: str) -> None:
    """cancel-op as `python -m bot serve` runs it, the poller included."""
    import socket

    from bot.config import Settings
    from bot.google.credentials import AnonymousTokens
    from bot.policy.allowlist import load_allowlist
    from bot.server import serve

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": f"{slack_url}/api/",
        "OPERATIONS_API_URL": f"{google_url}/v1",
        "GOOGLE_AUTH": "anonymous",
        "PORT": str(port),
    }
    settings = Settings.from_env(env)
    policy = load_allowlist(Path(allowlist), settings.operations_service)
    if os.environ.get("BENCH_GC_LOG"):
        _log_gc_pauses()
    asyncio.run(
        serve(settings, redis_url, policy, AnonymousTokens(), host="127.0.0.1",
              on_listening=lambda: print(port, flush=True))
    )  # fmt: skip


def _log_gc_pauses() -> None:
    """BENCH_GC_LOG=1: print each garbage collection over 10 ms to stderr."""
    import gc

    started: list[float] = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif (pause := time.perf_counter() - started[0]) > 0.01:
            print(f"gc generation {info['generation']}: {pause * 1000:.0f} ms", file=sys.stderr)

    gc.callbacks.append(timed)


def _run_aiohttp(application: object) -> None:
    from aiohttp import web

    async def main() -> None:
        assert isinstance(application, web.Application)
        runner = web.AppRunner(application, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        print(runner.addresses[0][1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# Load generation


async def measure(url: str, requests: int, concurrency: int) -> list[float]:
    """aiohttp rather than httpx: a cheaper client, so the figures are the app's own."""
    import aiohttp

    verifier = SignatureVerifier(SECRET)
    latencies: list[float] = []
    counter = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as client:

        async def worker() -> None:
            for i in counter:
                fields = {"command": "/cancel-op", "text": OP, "user_id": USER,
                          "channel_id": "C0BENCH", "team_id": "T0BENCH", "trigger_id": f"{i}.b",
                          "response_url": "http://127.0.0.1:9/"}  # fmt: skip
                body = urlencode(fields)
                ts = str(int(time.time()))
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Slack-Request-Timestamp": ts,
                    "X-Slack-Signature": str(verifier.generate_signature(timestamp=ts, body=body)),
                }
                started = time.perf_counter()
                async with client.post(url, data=body.encode(), headers=headers) as response:
                    text = await response.text()
                latencies.append(time.perf_counter() - started)
                if response.status != 200:
                    raise SystemExit(f"{url} answered {response.status}: {text}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def spawn(*args: str) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.ack_latency", *args], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, process.stdout.readline().split()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--google-latency", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction,
                        default=len(os.sched_getaffinity(0)) >= 2)  # fmt: skip
    parser.add_argument("--role", default="driver")
    parser.add_argument("args", nargs="*")
    options = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    if options.pin:  # before any child starts: children inherit it
        os.sched_setaffinity(0, cores[-1:] if options.role in ("bare", "ours") else cores[:-1])
    if options.role == "standins":
        return serve_standins(float(options.args[0]))
    if options.role == "bare":
        return serve_bare(*options.args)
    if options.role == "ours":
        return serve_ours(*options.args)

    from bot.runtime.redis_server import EmbeddedRedis

    workdir = Path(tempfile.mkdtemp(prefix="co-bench-"))
    (workdir / "allowlist.yaml").write_text(ALLOWLIST)
    redis_server = EmbeddedRedis(workdir / "redis")
    redis_url = redis_server.start()
    processes: list[subprocess.Popen[str]] = []
    try:
        standins, (slack_port, google_port) = spawn(
            "--role", "standins", str(options.google_latency)
        )
        processes.append(standins)
        slack_url, google_url = f"http://127.0.0.1:{slack_port}", f"http://127.0.0.1:{google_port}"
        bare, (bare_port,) = spawn("--role", "bare", slack_url)
        ours, (ours_port,) = spawn(
            "--role", "ours", slack_url, google_url, redis_url, str(workdir / "allowlist.yaml")
        )
        processes += [bare, ours]
        apps = {
            "bare Bolt": f"http://127.0.0.1:{bare_port}/slack/events",
            "cancel-op": f"http://127.0.0.1:{ours_port}/slack/events",
        }
        pinned = (
            f"apps pinned to core {cores[-1]}, the rest to {cores[:-1]}"
            if options.pin
            else ("not pinned")
        )
        print(f"{options.requests} signed /cancel-op requests per app and concurrency, in "
              f"{options.rounds} alternating rounds; stand-in Operations API answers in "
              f"{options.google_latency:g} s; {len(cores)} cores, {pinned}")  # fmt: skip
        print(f"{'concurrency':>11} {'app':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        per_round = max(1, options.requests // options.rounds)
        for concurrency in (10, 50):
            results: dict[str, list[float]] = {label: [] for label in apps}
            for url in apps.values():  # warm up connections and caches
                asyncio.run(measure(url, 200, concurrency))
            time.sleep(options.google_latency + 1)
            for _ in range(options.rounds):
                for label, url in apps.items():
                    results[label] += asyncio.run(measure(url, per_round, concurrency))
                    time.sleep(options.google_latency + 1)
            for label, lat in results.items():
                print(f"{concurrency:>11} {label:>10} {percentile(lat, 50) * 1000:8.2f} "
                      f"{percentile(lat, 99) * 1000:8.2f} {max(lat) * 1000:8.2f}")  # fmt: skip
            ratio = percentile(results["cancel-op"], 99) / percentile(results["bare Bolt"], 99)
            print(f"{concurrency:>11} {'p99 ratio':>10} {ratio:8.2f}x")
    finally:
        for process in processes:
            process.kill()
            process.wait()
        redis_server.stop()


if __name__ == "__main__":
    main()
