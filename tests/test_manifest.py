"""manifest.yaml is a valid Slack manifest and matches what the code listens for."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.sandbox import workspace
from bot.server import EVENTS_PATH

ROOT = Path(__file__).resolve().parent.parent
# Slack's published schema (slackapi/manifest-schema), kept beside the tests.
SCHEMA = ROOT / "tests" / "data" / "slack-manifest.schema.1.0.0.json"


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "manifest.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_manifest_validates_against_slacks_schema(manifest: dict[str, Any]) -> None:
    jsonschema.validate(manifest, json.loads(SCHEMA.read_text()))


def test_manifest_declares_the_public_slack_ids(manifest: dict[str, Any]) -> None:
    features = manifest["features"]
    assert [c["command"] for c in features["slash_commands"]] == ["/cancel-op"]
    assert [(s["type"], s["callback_id"]) for s in features["shortcuts"]] == [
        ("message", "cancel_op_from_message")
    ]
    for url in (
        features["slash_commands"][0]["url"],
        manifest["settings"]["interactivity"]["request_url"],
    ):
        assert url.endswith(EVENTS_PATH)


def test_manifest_asks_only_for_scopes_the_code_uses(manifest: dict[str, Any]) -> None:
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    source = "\n".join(
        p.read_text() for p in (ROOT / "bot").rglob("*.py") if "standins" not in p.parts
    )
    used = {"commands"}
    if re.search(r"chat_postMessage|chat_update", source):
        used.add("chat:write")
    if "usergroups_users_list" in source:
        used.add("usergroups:read")
    assert scopes == used


def test_the_sandbox_offers_the_shortcut_as_the_manifest_names_it(manifest: dict[str, Any]) -> None:
    declared = [{"name": s["name"], "callback_id": s["callback_id"]}
                for s in manifest["features"]["shortcuts"]]  # fmt: skip
    assert declared == [workspace.SHORTCUT]
