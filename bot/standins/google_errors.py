"""Refusals as Google's JSON APIs send them, shared by the Google stand-ins."""

from __future__ import annotations

from typing import Any

from aiohttp import web


def google_error(
    status: int, rpc_status: str, message: str, details: list[dict[str, Any]] | None = None
) -> web.Response:
    """An error as Google's JSON APIs answer it: {"error": {code, message, status, details}}."""
    error: dict[str, Any] = {"code": status, "message": message, "status": rpc_status}
    if details:
        error["details"] = details
    return web.json_response({"error": error}, status=status)
