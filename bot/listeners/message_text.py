"""Every piece of text in a Slack message: its text, blocks and attachments, at any depth.

Alert tools put operation names anywhere (a field, a link, a button, a code span), so
the walk takes every string rather than knowing each tool's layout.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# A message is small; these bound the walk of a hostile one.
_MAX_DEPTH = 12
_MAX_STRINGS = 2_000


def message_texts(message: Any) -> list[str]:
    texts: list[str] = []
    for text in _walk(message, 0):
        texts.append(text)
        if len(texts) >= _MAX_STRINGS:
            break
    return texts


def _walk(value: Any, depth: int) -> Iterator[str]:
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item, depth + 1)
