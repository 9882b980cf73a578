"""The Slack app manifest (``deploy/slack-app-manifest.yaml``): it is a valid manifest, it asks for
exactly the scopes the bot's Web API calls need, and a new API call cannot slip in unreviewed.

The schema (``tests/schemas/slack-app-manifest.schema.json``) is written for okeguard from
Slack's manifest reference; its ``$comment`` says how it relates to Slack's official file.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy" / "slack-app-manifest.yaml"
SCHEMA = ROOT / "tests" / "schemas" / "slack-app-manifest.schema.json"
SOURCES = [
    *sorted((ROOT / "okeguard" / "bot" / "slack").glob("*.py")),
    ROOT / "okeguard" / "bot" / "cli_serve.py",
]

EXPECTED_SCOPES = {"chat:write", "commands", "usergroups:read", "files:write"}

# Every Slack Web API method okeguard may call (as slack_sdk's WebClient method) and the bot
# scope it needs; None: no scope (a view opened from a trigger id, or a call Bolt and Socket Mode
# make themselves with the bot or app-level token). A method missing here fails
# test_every_api_call_is_covered: add it with its scope, and review the manifest.
METHOD_SCOPES: dict[str, str | None] = {
    "chat_postMessage": "chat:write",
    "chat_update": "chat:write",
    "chat_postEphemeral": "chat:write",
    "usergroups_users_list": "usergroups:read",
    # files.getUploadURLExternal + files.completeUploadExternal (no files.info since slack_sdk 3.23)
    "files_upload_v2": "files:write",
    "files_getUploadURLExternal": "files:write",
    "files_completeUploadExternal": "files:write",
    "views_open": None,
    "views_update": None,
    "auth_test": None,
    "apps_connections_open": None,  # the app-level token's connections:write, not a bot scope
}
# Scopes no Web API method stands for: the slash command itself.
FEATURE_SCOPES = {"commands"}

CALL = re.compile(r"\bclient\.([A-Za-z_][A-Za-z0-9_]*)\(")


def _manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text())
    assert isinstance(data, dict)
    return data


def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _errors(manifest: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in _validator().iter_errors(manifest)
    ]


def _called_methods() -> dict[str, list[str]]:
    """Web API methods called on a client in the bot's source, with where."""
    found: dict[str, list[str]] = {}
    for path in SOURCES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in CALL.finditer(line):
                found.setdefault(match.group(1), []).append(f"{path.relative_to(ROOT)}:{number}")
    return found


def test_schema_is_draft_2020_12_and_says_where_it_comes_from() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "NOT Slack's official schema file" in schema["$comment"]
    assert "manifest reference" in schema["$comment"]


def test_manifest_is_valid() -> None:
    assert _errors(_manifest()) == []


def test_manifest_asks_for_exactly_the_four_scopes() -> None:
    scopes = _manifest()["oauth_config"]["scopes"]
    assert set(scopes["bot"]) == EXPECTED_SCOPES
    assert len(scopes["bot"]) == len(EXPECTED_SCOPES)
    assert "user" not in scopes


def test_manifest_has_the_okeguard_command_in_socket_mode() -> None:
    manifest = _manifest()
    assert manifest["display_information"]["name"] == "okeguard"
    assert manifest["features"]["bot_user"] == {"display_name": "okeguard", "always_online": False}
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/okeguard"
    assert command["should_escape"] is False
    assert "url" not in command  # Socket Mode: Slack sends commands over the WebSocket
    settings = manifest["settings"]
    assert settings["interactivity"] == {"is_enabled": True}
    assert settings["socket_mode_enabled"] is True
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False


def test_the_bot_source_calls_the_slack_api() -> None:
    # the scan below must see the calls, or the next test passes on nothing
    called = _called_methods()
    for method in ("chat_postMessage", "usergroups_users_list", "files_upload_v2", "views_open"):
        assert method in called, f"{method} not found: did the client calls move?"


def test_every_api_call_is_covered_by_a_manifest_scope() -> None:
    scopes = set(_manifest()["oauth_config"]["scopes"]["bot"])
    called = _called_methods()
    unknown = {m: where for m, where in called.items() if m not in METHOD_SCOPES}
    assert not unknown, (
        f"Slack API methods not in METHOD_SCOPES: {unknown}; add each with the scope Slack "
        "documents for it, and add that scope to deploy/slack-app-manifest.yaml if it is missing"
    )
    missing = {m: METHOD_SCOPES[m] for m in called if METHOD_SCOPES[m] not in scopes | {None}}
    assert not missing, f"scopes missing from the manifest: {missing}"


def test_manifest_asks_for_no_scope_the_bot_does_not_use() -> None:
    scopes = set(_manifest()["oauth_config"]["scopes"]["bot"])
    needed = {METHOD_SCOPES[m] for m in _called_methods()} - {None}
    assert scopes == needed | FEATURE_SCOPES


def test_the_http_mode_described_in_the_comments_is_valid() -> None:
    manifest = _manifest()
    url = "https://okeguard.example.com/slack/events"
    manifest["features"]["slash_commands"][0]["url"] = url
    manifest["settings"]["interactivity"]["request_url"] = url
    manifest["settings"]["socket_mode_enabled"] = False
    assert _errors(manifest) == []
    text = MANIFEST.read_text()
    assert f"url: {url}" in text
    assert f"request_url: {url}" in text
    assert "socket_mode_enabled: false" in text


def _set(manifest: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    target: Any = manifest
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value is _DELETE:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("display_information.name", _DELETE, "'name' is a required property"),
        ("display_information.name", "", "should be non-empty"),
        ("display_information.name", "o" * 36, "is too long"),
        ("display_information.description", "d" * 141, "is too long"),
        ("display_information.background_color", "blue", "does not match"),
        ("display_information.colour", "#123456", "Additional properties"),
        ("unknown_top_level_key", True, "Additional properties"),
        ("features.slash_commands.0.command", "okeguard", "does not match '^/'"),
        ("features.slash_commands.0.command", "/" + "o" * 32, "is too long"),
        ("features.slash_commands.0.description", _DELETE, "'description' is a required"),
        ("features.slash_commands.0.url", "ftp://example.com/slack/events", "does not match"),
        ("features.slash_commands.0.escape", False, "Additional properties"),
        ("features.bot_user.display_name", _DELETE, "'display_name' is a required"),
        ("features.bot_user.always_online", "no", "is not of type 'boolean'"),
        ("oauth_config.scopes.bot", ["chat:write", "chat:writ"], "is not one of"),
        ("oauth_config.scopes.bot", ["chat:write", "chat:write"], "non-unique"),
        ("oauth_config.scopes.app", ["connections:write"], "Additional properties"),
        ("settings.interactivity.is_enabled", _DELETE, "'is_enabled' is a required"),
        ("settings.socket_mode", True, "Additional properties"),
        ("_metadata.major_version", 2, "1 was expected"),
        # HTTP mode without the URLs Slack needs to reach the bot
        ("settings.socket_mode_enabled", False, "'url' is a required property"),
    ],
)
def test_schema_rejects_a_broken_manifest(path: str, value: Any, problem: str) -> None:
    manifest = copy.deepcopy(_manifest())
    _set(manifest, path, value)
    errors = _errors(manifest)
    assert any(problem in e for e in errors), errors


def test_http_mode_without_an_interactivity_url_is_rejected() -> None:
    manifest = _manifest()
    manifest["settings"]["socket_mode_enabled"] = False
    manifest["features"]["slash_commands"][0]["url"] = "https://okeguard.example.com/slack/events"
    errors = _errors(manifest)
    assert any("'request_url' is a required property" in e for e in errors), errors
