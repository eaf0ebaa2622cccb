"""Answers sent a byte at a time, as a server or proxy that trickles sends them."""

from __future__ import annotations

import asyncio

from aiohttp import web


async def trickle(
    request: web.Request, answer: web.Response, interval: float
) -> web.StreamResponse:
    """Send the answer's headers at once, then its body a byte every `interval` seconds."""
    body = answer.body if isinstance(answer.body, bytes) else b""
    stream = web.StreamResponse(status=answer.status, headers={"Content-Type": "application/json"})
    stream.content_length = len(body)
    await stream.prepare(request)
    for index in range(len(body)):
        await stream.write(body[index : index + 1])
        await asyncio.sleep(interval)
    await stream.write_eof()
    return stream
