"""Check that every pin in requirements.txt installs from a wheel, with no compiler, on each
platform and CPython the bot supports, as `pip install` would choose files there."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PYTHONS = ("3.11", "3.12", "3.13")


def _manylinux(arch: str) -> list[str]:
    # glibc 2.28 and newer: Debian 10+, Ubuntu 20.04+, RHEL 8+, every buildpack image.
    legacy = [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return [f"manylinux_2_{minor}_{arch}" for minor in range(28, 4, -1)] + legacy


PLATFORMS = {
    "Linux x86_64": _manylinux("x86_64"),
    "Linux aarch64": _manylinux("aarch64"),
    # macOS 11, the first on Apple silicon; pip adds the universal2 tags that run there.
    "macOS arm64": ["macosx_11_0_arm64"],
}


def missing_wheels(requirements: Path, platform_tags: list[str], python: str, dest: Path) -> str:
    """pip's complaint when some pin has no wheel for this platform and CPython, else ''."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    command += ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
    for tag in platform_tags:
        command += ["--platform", tag]
    command += ["--requirement", str(requirements), "--dest", str(dest)]
    result = subprocess.run(command, capture_output=True, text=True)
    return "" if result.returncode == 0 else result.stderr.strip()


def main() -> int:
    requirements = Path(__file__).resolve().parent.parent / "requirements.txt"
    checks = [(name, python) for name in PLATFORMS for python in PYTHONS]
    with tempfile.TemporaryDirectory(prefix="wheels-") as scratch, ThreadPoolExecutor(3) as pool:
        # One folder per check: pip processes running side by side never share a file.
        problems = pool.map(
            lambda check: missing_wheels(
                requirements, PLATFORMS[check[0]], check[1], Path(scratch) / "-".join(check)
            ),
            checks,
        )
        failures = 0
        for (name, python), problem in zip(checks, problems, strict=True):
            print(f"{name}, CPython {python}: {'MISSING WHEELS' if problem else 'ok'}")
            if problem:
                failures += 1
                print(problem, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
