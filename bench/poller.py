"""The poller under load, and beside google-api-core's own LRO polling, in one run.

Part 1: 10,000 running operations per worker, watched by 1, 2 and 4 worker processes
(default POLL_* settings), each watch already polled long enough to be at the schedule's
ceiling: schedule lag (claim time minus due time, Redis clock) of every claim each worker
makes after a warm-up, p50/p99 per worker and overall, polls per second, CPU and memory.
Part 2: 1,000 operations that each end at a random time 20-80 s in, watched to the end
once by cancel-op (one worker) and once by google-api-core (`Operation.result()`, a
thread per operation): GET calls per operation, delay between the end and its detection,
CPU and memory per 1,000 watched operations.

Everything runs on 127.0.0.1: a stand-in Operations API (own process), the embedded
Redis, the workers. Needs `pip install google-api-core`.

    python -m bench.poller [--watches 10000] [--workers 1,2,4] [--seconds 60] [--warmup 30]
                           [--compare 1000] [--account EMAIL]

With --account, every watch acts as that service account (a binding's `impersonate`): each
poll carries its token, minted once by a stand-in IAM Credentials API and kept.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import redis
import redis.asyncio as aredis

from bot.watch.store import DUE_KEY, ClaimBatch, Watch, WatchStore

OP = "projects/bench/locations/us/operations/op-{:05d}"
# Operations per seeding request: about 0.4 MiB of JSON.
SEED_PART = 5_000
# The default schedule's ceiling (POLL_MAX_SECONDS), where a watch polled for a while sits.
SETTLED_CEILING_MS = 20_000


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# Roles, each a process of its own


def run_standins() -> None:
    from bot.standins.iam_credentials import IamCredentialsStandIn
    from bot.standins.operations_api import OperationsStandIn
    from bot.standins.runner import BackgroundServer

    operations, iam = OperationsStandIn(), IamCredentialsStandIn()
    operations.minted = iam.minted  # the Operations API knows whose token each one is
    server = BackgroundServer(operations.make_app).start()
    iam_server = BackgroundServer(iam.make_app).start()
    print(server.port, iam_server.port, flush=True)
    threading.Event().wait()


class ClaimLags:
    """The lag of every claim a watch store hands out while recording: read at the claim
    itself, so nothing else in the worker (its liveness report) can reset or thin it."""

    def __init__(self, store: WatchStore) -> None:
        self.lags_ms: list[int] = []
        self.recording = False
        claim = store.claim

        async def claim_and_record(limit: int, lease_ms: int) -> ClaimBatch:
            batch = await claim(limit, lease_ms)
            if self.recording:
                self.lags_ms.extend(batch.now_ms - c.due_ms for c in batch.claims)
            return batch

        store.claim = claim_and_record  # type: ignore[method-assign]


def run_worker(seconds: float, warmup: float) -> None:
    """One `python -m bot worker` equivalent that reports its own figures at the end."""
    from bot.app import build_watcher
    from bot.config import Settings
    from bot.google.credentials import AnonymousTokens
    from bot.runtime.logs import configure_logging
    from bot.server import connected

    settings = Settings.from_env(os.environ, needs_slack_requests=False)
    configure_logging(logging.WARNING)

    async def main() -> dict[str, Any]:
        async with connected(settings, os.environ["REDIS_URL"], AnonymousTokens()) as clients:
            watcher = build_watcher(settings, clients.redis, clients.slack, clients.operations)
            lags = ClaimLags(watcher.store)
            rss_idle = rss_mb()
            print("ready", flush=True)
            stop = asyncio.Event()
            task = asyncio.create_task(watcher.run(stop))
            await asyncio.sleep(warmup)
            lags.recording = True
            polls_before, cpu_before = watcher.liveness.polls, cpu_seconds()
            await asyncio.sleep(seconds)
            lags.recording = False
            result = {
                "lags_ms": lags.lags_ms,
                "polls": watcher.liveness.polls - polls_before,
                "cpu_seconds": cpu_seconds() - cpu_before,
                "rss_idle_mb": rss_idle,
                "rss_mb": rss_mb(),
            }
            stop.set()
            await task
            return result

    print(json.dumps(asyncio.run(main())), flush=True)


def run_api_core(base_url: str, names: list[str]) -> None:
    """google-api-core's LRO polling: Operation.result() in a thread per operation."""
    from google.api_core import operation
    from google.protobuf import empty_pb2

    client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=len(names)))

    def api_request(method: str, path: str, **_: Any) -> dict[str, Any]:
        body = client.request(method, f"{base_url}/{path.removeprefix('operations/')}").json()
        body.pop("metadata", None)  # its @type is not in api-core's protobuf registry
        if "response" in body:
            body["response"] = {"@type": "type.googleapis.com/google.protobuf.Empty"}
        return dict(body)

    rss_idle, cpu_before = rss_mb(), cpu_seconds()
    print("ready", flush=True)

    def watch(name: str) -> None:
        # Typed loosely: google-api-core may be installed without type information.
        from_http_json: Any = operation.from_http_json
        future = from_http_json({"name": name}, api_request, empty_pb2.Empty)
        # A cancelled operation ends in an exception; that is its end too.
        with contextlib.suppress(Exception):
            future.result()

    threads = [threading.Thread(target=watch, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    time.sleep(10)
    rss_busy = rss_mb()
    for thread in threads:
        thread.join()
    print(json.dumps({"cpu_seconds": cpu_seconds() - cpu_before, "rss_idle_mb": rss_idle,
                      "rss_mb": max(rss_busy, rss_mb())}), flush=True)  # fmt: skip


# The driver


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.poller", *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


def enqueue_watching(
    redis_url: str, names: list[str], settled_ms: int = 0, account: str = ""
) -> None:
    """Watches already past the cancel stage, as after Google accepted each cancel.

    With settled_ms, each is at that backoff ceiling and falls due at a random time within
    it, as watches polled for a while are; otherwise each is new and due now.
    """

    async def add() -> None:
        client = aredis.Redis.from_url(redis_url, decode_responses=True)
        store = WatchStore(client, active_ttl_ms=86_400_000)
        for name in names:
            watch = Watch(store.new_id(), name, "U0BENCH", "C0BENCH", "", 0, stage="watch",
                          delay_ms=settled_ms or 1000, account=account)  # fmt: skip
            await store.enqueue(watch)
        if settled_ms:
            seconds, micros = await client.time()
            now_ms = seconds * 1000 + micros // 1000
            due = {str(i): now_ms + random.randrange(settled_ms)
                   for i in await client.zrange(DUE_KEY, 0, -1)}  # fmt: skip
            await client.zadd(DUE_KEY, due)
        await client.aclose()

    asyncio.run(add())


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if values else 0.0


class Bench:
    def __init__(self, redis_url: str, google_url: str, iam_url: str, account: str) -> None:
        self.redis_url = redis_url
        self.account = account
        self.google_url = google_url
        self.store = redis.Redis.from_url(redis_url)
        self.env = {
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_API_URL": "http://127.0.0.1:9/api/",  # never called: no channel to post in
            "OPERATIONS_API_URL": f"{google_url}/v1",
            "IAM_CREDENTIALS_API_URL": f"{iam_url}/v1",
            "GOOGLE_AUTH": "anonymous",
            "REDIS_URL": redis_url,
        }

    def seed(self, ops: list[dict[str, Any]]) -> None:
        # In parts: the stand-in, as aiohttp does by default, refuses bodies over 1 MiB
        # (413), and an unseeded operation answers NOT_FOUND until its watch gives up.
        for start in range(0, len(ops), SEED_PART):
            part = ops[start : start + SEED_PART]
            seeded = httpx.post(f"{self.google_url}/_standin/operations", json=part, timeout=60)
            seeded.raise_for_status()

    def operations(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = httpx.get(
            f"{self.google_url}/_standin/operations", timeout=60
        ).json()
        return result

    def load(self, workers: int, watches: int, seconds: float, warmup: float) -> None:
        """`watches` per worker, all enqueued before any worker starts its clock."""
        self.store.flushdb()
        prefix = f"load{workers}-"
        names = [OP.format(i).replace("op-", prefix) for i in range(watches * workers)]
        self.seed([{"name": n, "ends_in_seconds": 10**6} for n in names])
        redis_before = self.used_memory()
        enqueue_watching(self.redis_url, names, SETTLED_CEILING_MS, self.account)
        redis_after = self.used_memory()
        procs = [spawn("--role", "worker", str(seconds), str(warmup), env=self.env)
                 for _ in range(workers)]  # fmt: skip
        for proc in procs:
            assert first_line(proc) == "ready"
        results = [json.loads(first_line(p)) for p in procs]
        for proc in procs:
            proc.wait()
        ended = len(names) - int(self.store.zcard(DUE_KEY))
        if ended:  # running operations never end: only failed polls end their watches
            print(f"warning: {ended} watches ended during the run", flush=True)
        lags = [lag for r in results for lag in r["lags_ms"]]
        polls = sum(r["polls"] for r in results)
        cpu = sum(r["cpu_seconds"] for r in results)
        rss = sum(r["rss_mb"] for r in results)
        per_worker = " ".join(f"{pct(r['lags_ms'], 99):.0f}" for r in results)
        print(f"{workers:>7} {len(names):>8} {polls / seconds:>8.0f} {pct(lags, 50):>7.0f} "
              f"{pct(lags, 99):>7.0f} {max(lags, default=0):>7.0f} {cpu / seconds * 100:>6.0f}% "
              f"{rss:>8.1f} {(redis_after - redis_before) / 2**20:>9.1f} "
              f"{cpu / max(polls, 1) * 1e6:>8.0f}  {per_worker}")  # fmt: skip

    def used_memory(self) -> int:
        return int(self.store.info("memory")["used_memory"])

    def compare(self, count: int) -> None:
        rows = {}
        for label in ("cancel-op", "api-core"):
            self.store.flushdb()
            names = [OP.format(i).replace("op-", f"{label}-") for i in range(count)]
            self.seed([{"name": n, "ends_in_seconds": random.uniform(20, 80)} for n in names])
            started = time.monotonic()
            if label == "cancel-op":
                proc = spawn("--role", "worker", "130", "0", env=self.env)
                assert first_line(proc) == "ready"
                redis_before = self.used_memory()
                enqueue_watching(self.redis_url, names)
                redis_mb = (self.used_memory() - redis_before) / 2**20
            else:
                proc = spawn("--role", "apicore", f"{self.google_url}/v1", *names)
                assert first_line(proc) == "ready"
                redis_mb = 0.0
            figures = json.loads(first_line(proc))
            proc.wait()
            elapsed = time.monotonic() - started
            ops = [o for o in self.operations() if o["name"] in set(names)]
            seen = [o for o in ops if o["first_seen_done"] is not None]
            delays = [o["first_seen_done"] - o["ends_at"] for o in seen]
            rows[label] = (
                statistics.mean(o["gets"] for o in ops),
                pct(delays, 50), pct(delays, 99), len(seen),
                figures["cpu_seconds"] * 1000 / count,
                (figures["rss_mb"] - figures["rss_idle_mb"] + redis_mb) * 1000 / count,
                elapsed,
            )  # fmt: skip
        print(f"{'':>10} {'GETs/op':>8} {'detect p50 s':>12} {'p99 s':>6} {'ended':>6} "
              f"{'CPU s/1k':>9} {'MB/1k ops':>10}")  # fmt: skip
        for label, (gets, d50, d99, ended, cpu, mem, _) in rows.items():
            print(f"{label:>10} {gets:>8.1f} {d50:>12.2f} {d99:>6.2f} {ended:>6} {cpu:>9.2f} "
                  f"{mem:>10.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", default="driver")
    parser.add_argument("--watches", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=30)
    parser.add_argument("--compare", type=int, default=1000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--account", default="", help="a service account every watch acts as")
    parser.add_argument("args", nargs="*")
    options = parser.parse_args()
    if options.role == "standins":
        return run_standins()
    if options.role == "worker":
        return run_worker(float(options.args[0]), float(options.args[1]))
    if options.role == "apicore":
        return run_api_core(options.args[0], options.args[1:])

    from bot.runtime.redis_server import EmbeddedRedis

    workdir = Path(tempfile.mkdtemp(prefix="co-bench-"))
    redis_server = EmbeddedRedis(workdir)
    standins = spawn("--role", "standins")
    try:
        google_port, iam_port = first_line(standins).split()
        bench = Bench(redis_server.start(), f"http://127.0.0.1:{google_port}",
                      f"http://127.0.0.1:{iam_port}", options.account)  # fmt: skip
        print(f"{os.cpu_count()} cores; lag measured after a {options.warmup:g} s warm-up, "
              f"over {options.seconds:g} s")  # fmt: skip
        print(f"{'workers':>7} {'watches':>8} {'polls/s':>8} {'lag p50':>7} {'p99 ms':>7} "
              f"{'max ms':>7} {'CPU':>7} {'RSS MB':>8} {'Redis MB':>9} {'µs/poll':>8}  "
              "p99 ms per worker")  # fmt: skip
        for workers in (int(w) for w in options.workers.split(",") if w):
            bench.load(workers, options.watches, options.seconds, options.warmup)
        if options.compare:
            bench.compare(options.compare)
    finally:
        standins.kill()
        redis_server.stop()


if __name__ == "__main__":
    main()
