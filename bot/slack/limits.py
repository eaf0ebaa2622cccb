"""Slack's published limits for messages, modals and Block Kit, and a check against them.

`messages.py` cuts text to these numbers; the Slack stand-in and the tests refuse what
breaks them with the same check, as Slack does (`invalid_blocks`, `msg_too_long`, and
`invalid_arguments` for views).
"""

from __future__ import annotations

from typing import Any

MESSAGE_TEXT = 40_000
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
VIEW_TITLE = 24  # also a modal's submit and close
PRIVATE_METADATA = 3000
CALLBACK_ID = 255
BLOCK_ID = 255
ACTION_ID = 255
SECTION_TEXT = 3000
SECTION_FIELDS = 10
FIELD_TEXT = 2000
CONTEXT_ELEMENTS = 10
CONTEXT_TEXT = 3000
HEADER_TEXT = 150
ACTIONS_ELEMENTS = 25
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
BUTTON_URL = 3000
INPUT_LABEL = 2000
PLACEHOLDER = 150
SELECT_OPTIONS = 100
OPTION_TEXT = 75
OPTION_VALUE = 150

_TEXT_TYPES = ("plain_text", "mrkdwn")


def slack_length(text: str) -> int:
    """Characters as Slack counts them (UTF-16 code units: an emoji can count twice)."""
    return len(text.encode("utf-16-le")) // 2


def message_problems(text: Any, blocks: Any) -> tuple[str, list[str]]:
    """Slack's error for a message (chat.postMessage, chat.update, a response_url reply), and
    its reasons; ("", []) when Slack would take it."""
    if text is not None and not isinstance(text, str):
        return "invalid_arguments", ["[ERROR] text must be a string [json-pointer:/text]"]
    if not text and not blocks:
        return "no_text", []
    if text and slack_length(text) > MESSAGE_TEXT:
        return "msg_too_long", []
    problems = _blocks(blocks or [], MESSAGE_BLOCKS, "/blocks")
    return ("invalid_blocks", problems) if problems else ("", [])


def view_problems(view: Any) -> list[str]:
    """Why Slack would refuse a modal in views.open, views.update or views.push; [] if not."""
    if not isinstance(view, dict):
        return [_error("must be an object", "/view")]
    problems: list[str] = []
    if view.get("type") != "modal":
        problems.append(_error("must be modal", "/view/type"))
    problems += _text_object(view.get("title"), VIEW_TITLE, "/view/title", plain=True)
    for key in ("submit", "close"):
        if key in view:
            problems += _text_object(view[key], VIEW_TITLE, f"/view/{key}", plain=True)
    problems += _string(view.get("private_metadata", ""), PRIVATE_METADATA,
                        "/view/private_metadata", required=False)  # fmt: skip
    problems += _string(view.get("callback_id", ""), CALLBACK_ID, "/view/callback_id",
                        required=False)  # fmt: skip
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or not blocks:
        return [*problems, _error("must have at least 1 block", "/view/blocks")]
    problems += _blocks(blocks, VIEW_BLOCKS, "/view/blocks")
    if any(isinstance(b, dict) and b.get("type") == "input" for b in blocks) and (
        "submit" not in view
    ):
        problems.append(_error("a view with inputs needs submit", "/view/submit"))
    return problems


def _blocks(blocks: Any, most: int, at: str) -> list[str]:
    if not isinstance(blocks, list):
        return [_error("must be an array", at)]
    if len(blocks) > most:
        return [_error(f"no more than {most} items allowed", at)]
    problems: list[str] = []
    for index, block in enumerate(blocks):
        problems += _block(block, f"{at}/{index}")
    return problems


def _block(block: Any, at: str) -> list[str]:
    if not isinstance(block, dict):
        return [_error("must be an object", at)]
    problems = _string(block.get("block_id", ""), BLOCK_ID, f"{at}/block_id", required=False)
    kind = block.get("type")
    if kind == "section":
        problems += _section(block, at)
    elif kind == "context":
        problems += _context(block, at)
    elif kind == "header":
        problems += _text_object(block.get("text"), HEADER_TEXT, f"{at}/text", plain=True)
    elif kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= ACTIONS_ELEMENTS:
            return [*problems, _error(f"must have 1 to {ACTIONS_ELEMENTS} elements", at)]
        for index, element in enumerate(elements):
            problems += _element(element, f"{at}/elements/{index}")
    elif kind == "input":
        problems += _text_object(block.get("label"), INPUT_LABEL, f"{at}/label", plain=True)
        problems += _element(block.get("element"), f"{at}/element")
    elif kind != "divider":
        problems.append(_error(f"unsupported block type {kind!r}", f"{at}/type"))
    return problems


def _section(block: dict[str, Any], at: str) -> list[str]:
    if "text" not in block and "fields" not in block:
        return [_error("must have text or fields", at)]
    problems: list[str] = []
    if "text" in block:
        problems += _text_object(block["text"], SECTION_TEXT, f"{at}/text")
    if "fields" in block:
        fields = block["fields"]
        if not isinstance(fields, list) or not 1 <= len(fields) <= SECTION_FIELDS:
            return [*problems, _error(f"must have 1 to {SECTION_FIELDS} fields", f"{at}/fields")]
        for index, item in enumerate(fields):
            problems += _text_object(item, FIELD_TEXT, f"{at}/fields/{index}")
    if "accessory" in block:
        problems += _element(block["accessory"], f"{at}/accessory")
    return problems


def _context(block: dict[str, Any], at: str) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= CONTEXT_ELEMENTS:
        return [_error(f"must have 1 to {CONTEXT_ELEMENTS} elements", f"{at}/elements")]
    problems: list[str] = []
    for index, element in enumerate(elements):
        problems += _text_object(element, CONTEXT_TEXT, f"{at}/elements/{index}")
    return problems


def _element(element: Any, at: str) -> list[str]:
    if not isinstance(element, dict):
        return [_error("must be an object", at)]
    problems = _string(element.get("action_id", ""), ACTION_ID, f"{at}/action_id",
                       required=False)  # fmt: skip
    kind = element.get("type")
    if kind == "button":
        problems += _text_object(element.get("text"), BUTTON_TEXT, f"{at}/text", plain=True)
        problems += _string(element.get("value", ""), BUTTON_VALUE, f"{at}/value",
                            required=False)  # fmt: skip
        problems += _string(element.get("url", ""), BUTTON_URL, f"{at}/url", required=False)
    elif kind in ("plain_text_input", "static_select"):
        if "placeholder" in element:
            problems += _text_object(element["placeholder"], PLACEHOLDER,
                                     f"{at}/placeholder", plain=True)  # fmt: skip
        if kind == "static_select":
            problems += _options(element.get("options"), f"{at}/options")
    else:
        problems.append(_error(f"unsupported element type {kind!r}", f"{at}/type"))
    return problems


def _options(options: Any, at: str) -> list[str]:
    if not isinstance(options, list) or not 1 <= len(options) <= SELECT_OPTIONS:
        return [_error(f"must have 1 to {SELECT_OPTIONS} options", at)]
    problems: list[str] = []
    for index, option in enumerate(options):
        where = f"{at}/{index}"
        if not isinstance(option, dict):
            problems.append(_error("must be an object", where))
            continue
        problems += _text_object(option.get("text"), OPTION_TEXT, f"{where}/text", plain=True)
        problems += _string(option.get("value"), OPTION_VALUE, f"{where}/value", required=True)
    return problems


def _text_object(value: Any, most: int, at: str, *, plain: bool = False) -> list[str]:
    if not isinstance(value, dict) or value.get("type") not in _TEXT_TYPES:
        return [_error("must be a text object", at)]
    if plain and value["type"] != "plain_text":
        return [_error("must be plain_text", f"{at}/type")]
    return _string(value.get("text"), most, f"{at}/text", required=True)


def _string(value: Any, most: int, at: str, *, required: bool) -> list[str]:
    if not isinstance(value, str):
        return [_error("must be a string", at)]
    if required and not value:
        return [_error("must be more than 0 characters", at)]
    if slack_length(value) > most:
        return [_error(f"must be less than {most + 1} characters", at)]
    return []


def _error(reason: str, at: str) -> str:
    """Slack's own wording of a Block Kit complaint."""
    return f"[ERROR] {reason} [json-pointer:{at}]"
