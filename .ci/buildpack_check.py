"""Install and start the bot as Heroku's and Google Cloud's Python buildpacks do: a fresh venv,
`pip install -r requirements.txt`, the project itself without dependencies, then the
Procfile's `web` command, which must answer GET /healthz with 200 on $PORT (Redis embedded)
and exit 0 on SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 60
ALLOWLIST = """bindings:
  - permission: cloudaicompanion.operations.cancel
    members: [user:U0BUILDPACK]
"""


def buildpack_python() -> str:
    """The Python that .python-version names, as the buildpacks pick, when on PATH; else ours."""
    wanted = shutil.which(f"python{(ROOT / '.python-version').read_text().strip()}")
    # A version manager's shim may be on PATH for a version that is not installed.
    if wanted and subprocess.run([wanted, "--version"], capture_output=True).returncode == 0:
        return wanted
    return sys.executable


def install(scratch: Path) -> Path:
    venv = scratch / "venv"
    interpreter = buildpack_python()
    print(f"fresh venv with {interpreter}")
    subprocess.run([interpreter, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--requirement", str(ROOT / "requirements.txt")], check=True)
    subprocess.run([*pip, "--no-deps", str(ROOT)], check=True)
    return python


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthz_status(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def procfile_web() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        kind, _, command = line.partition(":")
        if kind.strip() == "web":
            return command.strip()
    raise SystemExit("Procfile has no web process")


def serve_until_healthy(python: Path, scratch: Path) -> bool:
    (scratch / "allowlist.yaml").write_text(ALLOWLIST)
    port = free_port()
    env = {
        # The venv first, as a buildpack's image has it: `python` is the venv's.
        "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(scratch),
        "PORT": str(port),
        "SLACK_BOT_TOKEN": "xoxb-0000-buildpack-check",
        "SLACK_SIGNING_SECRET": "0" * 32,
        "GOOGLE_AUTH": "anonymous",
        "ALLOWLIST_FILE": str(scratch / "allowlist.yaml"),
        "BOT_DATA_DIR": str(scratch / "data"),
    }
    command = procfile_web()
    print(f"Procfile web: {command}")
    # From the scratch folder, so `bot` is the installed copy, not this checkout; `exec`, so
    # SIGTERM reaches the bot itself, as the platform sends it.
    process = subprocess.Popen(
        ["/bin/sh", "-c", f"exec {command}"],
        cwd=scratch,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            status = healthz_status(port)
            if status == 200:
                break
            time.sleep(0.2)
        print(f"GET /healthz: {status}")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
    if status != 200 or process.returncode != 0:
        print(f"{command} exited with {process.returncode}:\n{stderr}", file=sys.stderr)
        return False
    return True


def main() -> int:
    # Short on purpose: the embedded Redis listens on a Unix socket under BOT_DATA_DIR.
    with tempfile.TemporaryDirectory(prefix="bp-", dir="/tmp") as scratch:
        python = install(Path(scratch))
        healthy = serve_until_healthy(python, Path(scratch))
    print("buildpack-style install: " + ("serves /healthz" if healthy else "FAILED"))
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
