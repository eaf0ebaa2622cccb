"""Command line: `python -m bot [serve]` runs the app; `python -m bot worker` runs the poller;
`python -m bot sandbox` runs it all locally against stand-ins, with a page playing Slack."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import MutableMapping, Sequence

from bot.config import Settings, StartupError
from bot.google.credentials import AnonymousTokens, CredentialsError, GoogleTokens, TokenSource
from bot.policy.allowlist import Allowlist, AllowlistError, load_allowlist
from bot.runtime.logs import configure_logging
from bot.runtime.redis_server import EmbeddedRedis
from bot.runtime.redis_startup import wait_for_redis

log = logging.getLogger("cancel_op")


def main(argv: Sequence[str] | None = None) -> int:
    # The console script and `python -m bot` run the same command line; usage names the one used.
    prog = "python -m bot" if sys.argv[0].endswith("__main__.py") else "cancel-op"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument(
        "command", nargs="?", default="serve", choices=("serve", "worker", "sandbox")
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="sandbox only: the page's port on 127.0.0.1"
    )
    args = parser.parse_args(argv)
    configure_logging()
    # SIGTERM before the event loop takes it over (waiting for Redis) ends start-up like Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    embedded: EmbeddedRedis | None = None
    try:
        if args.command == "sandbox":
            from bot.sandbox.run import run_sandbox

            run_sandbox(args.port)
            return 0
        settings = Settings.from_env(os.environ, needs_slack_requests=args.command == "serve")
        _forget_slack_secrets(os.environ)
        allowlist = _load_allowlist(settings)
        redis_url = settings.redis_url
        if redis_url is not None:
            wait_for_redis(redis_url)
        elif args.command == "worker":
            raise StartupError(
                "REDIS_URL",
                "is required by `worker`",
                "Set it to the Redis that `serve` uses (an embedded Redis belongs to its serve)",
            )
        else:
            embedded = EmbeddedRedis(settings.data_dir)
            redis_url = embedded.start()
        tokens = _google_tokens(settings)
        from bot.server import serve, work

        if args.command == "worker":
            asyncio.run(work(settings, redis_url, tokens))
        else:
            asyncio.run(serve(settings, redis_url, allowlist, tokens))
    except StartupError as exc:
        print(f"cancel-op: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def _load_allowlist(settings: Settings) -> Allowlist:
    try:
        return load_allowlist(settings.allowlist_file, settings.operations_service)
    except AllowlistError as exc:
        raise StartupError(
            "ALLOWLIST_FILE", str(exc), "Fix the file, or point ALLOWLIST_FILE at the right one"
        ) from exc


def _forget_slack_secrets(environ: MutableMapping[str, str]) -> None:
    """Settings hold the secrets from here on. Out of the environment, no child process
    (the embedded Redis) inherits them, and Bolt, given our client, finds no second bot
    token to warn that it will not use."""
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        environ.pop(name, None)


def _google_tokens(settings: Settings) -> TokenSource:
    if settings.google_auth == "anonymous":
        return AnonymousTokens()
    try:
        return GoogleTokens.from_adc()
    except CredentialsError as exc:
        raise StartupError(
            "GOOGLE_AUTH",
            f"adc: no Application Default Credentials ({exc})",
            "Run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS, "
            "or run on Google Cloud with a service account",
        ) from exc


if __name__ == "__main__":
    sys.exit(main())
