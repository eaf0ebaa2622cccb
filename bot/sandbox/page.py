"""The sandbox page and what it reads besides Slack: the workspace, the emulated operations
(with the identity each call carried), the IAM Credentials stand-in (which can refuse the
impersonated account), and a way to raise a fresh alert.

Alerts are raised as a pipeline raises them: the operation is added to the Operations
stand-in, and the alert is posted with `chat.postMessage` under the pipeline's own token.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.sandbox import workspace
from bot.standins.operations_api import Behaviour

STATIC_DIR = Path(__file__).with_name("static")


class SandboxPage:
    def __init__(self, operations_url: str, iam_url: str) -> None:
        self._operations_url = operations_url  # the Operations stand-in's base URL
        self._iam_url = iam_url  # the IAM Credentials stand-in's
        self._slack_url = ""  # this server's own, known once it listens
        self._raised = itertools.count(1)
        self._http: aiohttp.ClientSession | None = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._index)
        app.router.add_static("/static/", STATIC_DIR)
        app.router.add_get("/sandbox/workspace", self._workspace)
        app.router.add_get("/sandbox/operations", self._operations)
        app.router.add_post("/sandbox/alerts", self._raise_alert)
        app.router.add_get("/sandbox/iam", self._iam)
        app.router.add_post("/sandbox/iam", self._set_refusal)
        app.cleanup_ctx.append(self._session)

    async def _session(self, _: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as self._http:
            yield

    async def seed(self, slack_url: str) -> None:
        """The operations and alerts a newcomer finds on opening the page."""
        self._slack_url = slack_url
        await self._add_operations([op.seed() for op in workspace.OPERATIONS])
        for alert in workspace.alerts():
            await self._post_alert(alert)

    async def _index(self, _: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    async def _workspace(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "channel": {"id": workspace.CHANNEL, "name": workspace.CHANNEL_NAME},
                "users": [{"id": k, "label": v} for k, v in workspace.USERS.items()],
                "directory": workspace.DIRECTORY,
                "usergroups": {workspace.ROTATION: workspace.ROTATION_HANDLE},
                "parent": workspace.PARENT,
                "impersonated": workspace.IMPERSONATED,
                "shortcut": workspace.SHORTCUT,
                "behaviours": [
                    {"value": b.value, "label": label} for b, label in workspace.BEHAVIOURS.items()
                ],
            }
        )

    async def _operations(self, _: web.Request) -> web.Response:
        assert self._http is not None
        async with self._http.get(f"{self._operations_url}/_standin/operations") as response:
            operations = await response.json()
        keep = (
            "name",
            "behaviour",
            "verb",
            "done",
            "cancel_requested",
            "error",
            "response",
            "gets",
            "status_message",
            "create_time",
            "end_time",
            "calls_as",
        )
        return web.json_response([{k: op.get(k) for k in keep} for op in operations])

    async def _iam(self, _: web.Request) -> web.Response:
        """Tokens asked for the impersonated account, and whether it is refused now."""
        assert self._http is not None
        async with self._http.get(f"{self._iam_url}/_standin/iam") as response:
            summary = await response.json()
        asked = [r for r in summary["requests"] if r["account"] == workspace.IMPERSONATED]
        return web.json_response(
            {
                "account": workspace.IMPERSONATED,
                "minted": sum(1 for r in asked if r["status"] == 200),
                "refused": sum(1 for r in asked if r["status"] != 200),
                "refusing": summary["refusals"].get(workspace.IMPERSONATED),
            }
        )

    async def _set_refusal(self, request: web.Request) -> web.Response:
        """{"refuse": true | false}: the account's token requests answer PERMISSION_DENIED."""
        assert self._http is not None
        fields = await request.json()
        refuse = "PERMISSION_DENIED" if isinstance(fields, dict) and fields.get("refuse") else None
        url = f"{self._iam_url}/_standin/iam/refusals"
        body = {"account": workspace.IMPERSONATED, "refuse": refuse}
        async with self._http.post(url, json=body) as response:
            response.raise_for_status()
        return await self._iam(request)

    async def _raise_alert(self, request: web.Request) -> web.Response:
        fields = await request.json()
        try:
            behaviour = Behaviour(fields.get("behaviour") if isinstance(fields, dict) else None)
        except ValueError:
            return web.json_response({"ok": False, "error": "unknown behaviour"}, status=400)
        operation = workspace.SeededOperation(
            f"operation-{behaviour.value.replace('_', '-')}-{next(self._raised):04d}",
            behaviour,
            "update",
            "codeRepositoryIndexes/shop-web",
            status="Re-indexing",
            progress=10,
            alert=f"Test alert: an operation that {workspace.BEHAVIOURS[behaviour]}",
        )
        await self._add_operations([operation.seed()])
        await self._post_alert(workspace.alert_message(operation.alert, operation.name))
        return web.json_response({"ok": True, "name": operation.name})

    async def _add_operations(self, seeds: list[dict[str, Any]]) -> None:
        assert self._http is not None
        url = f"{self._operations_url}/_standin/operations"
        async with self._http.post(url, json=seeds) as response:
            response.raise_for_status()

    async def _post_alert(self, alert: dict[str, Any]) -> None:
        assert self._http is not None
        headers = {"Authorization": f"Bearer {workspace.ALERTS_TOKEN}"}
        url = f"{self._slack_url}/api/chat.postMessage"
        async with self._http.post(url, json=alert, headers=headers) as response:
            body = await response.json()
            if not body.get("ok"):
                raise RuntimeError(f"the alert was not posted: {body.get('error')}")
