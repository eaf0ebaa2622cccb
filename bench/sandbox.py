"""`python -m bot sandbox` as a newcomer meets it: time to the page's address, the alert's
two clicks (modal shown with the live operation; cancel to CANCELLED in the thread), and
the memory of the sandbox with its redis-server. Driven over the page's own HTTP routes.

    python -m bench.sandbox [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bot.sandbox import workspace
from tests.sandbox_process import start_sandbox
from tests.slack_driver import wait_for


def rss_mb(pid: int) -> float:
    """The process and its children (the embedded redis-server)."""
    total = 0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(p) for p in (task / "children").read_text().split()]
    for each in pids:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def one_run() -> dict[str, float]:
    started = time.monotonic()
    sandbox = start_sandbox()
    ready = time.monotonic() - started
    http = httpx.Client(base_url=sandbox.url, timeout=30)
    user, name = workspace.ONCALL, workspace.CANCELS.name

    def seen() -> dict[str, Any]:
        body: dict[str, Any] = http.get(f"/client/state?user={user}").json()
        return body

    try:
        alert = next(m for m in seen()["messages"] if name in m["text"])
        clicked = time.monotonic()
        http.post("/client/action", json={"user": user, "channel": alert["channel"],
                                          "ts": alert["ts"], "action_id": "cancel_op",
                                          "value": name})  # fmt: skip
        modal = wait_for(lambda: [m for m in seen()["modals"] if m.get("submit")])[0]
        shown = time.monotonic() - clicked
        submitted = time.monotonic()
        http.post("/client/submit", json={"user": user, "view_id": modal["id"]})
        thread = alert["ts"]
        wait_for(lambda: [m for m in seen()["messages"]
                       if m["thread_ts"] == thread and "(CANCELLED)" in m["text"]])  # fmt: skip
        ended = time.monotonic() - submitted
        memory = rss_mb(sandbox.process.pid)
    finally:
        http.close()
        sandbox.stop()
    return {"ready_s": ready, "modal_s": shown, "cancelled_s": ended, "rss_mb": memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    runs = [one_run() for _ in range(parser.parse_args().runs)]
    for key in runs[0]:
        values = [r[key] for r in runs]
        print(f"{key:>12}: median {statistics.median(values):7.2f}  max {max(values):7.2f}")


if __name__ == "__main__":
    main()
