"""Who may approve (``okeguard.approval_policy``) and the settings it reads: one rule for Slack
and the command line. Pure: group members come from a dict, no Slack, no database."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

from okeguard.approval_policy import (
    EVERY_CLUSTER,
    ApprovalRules,
    approval_refusal,
    cli_person,
    slack_person,
)
from okeguard.config import Config, load_config
from okeguard.errors import ConfigError

ALICE, BOB, CAROL, DAVE = "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"
SRE, PROD_SRE = "S0SRE", "S0PRODSRE"
GROUPS = {SRE: {ALICE, BOB, CAROL}, PROD_SRE: {BOB}}


def members(group: str) -> Collection[str]:
    return GROUPS[group]


def rules(**extra: Any) -> ApprovalRules:
    doc: dict[str, Any] = {
        "clusters": [{"name": "shop-prod"}, {"name": "shop-dev"}],
        "slack": {"approvers": {"users": [DAVE], "groups": [SRE]}},
        "cli": {
            "approvers": [
                {"uid": 1000, "name": "alice", "slack_user": ALICE},
                {"uid": 1001, "name": "bob"},
            ]
        },
    }
    for key, value in extra.items():
        doc.setdefault(key, {}).update(value)
    return ApprovalRules.of(Config.model_validate(doc))


def slack_refusal(user: str, r: ApprovalRules, **kw: Any) -> str | None:
    return approval_refusal(slack_person(user, r.cli), r, members=members, **kw)


def test_slack_approvers_by_user_and_group_and_nobody_else() -> None:
    r = rules()
    assert slack_refusal(DAVE, r) is None
    assert slack_refusal(ALICE, r) is None  # by group
    assert "not in slack.approvers" in (slack_refusal("U0MALLORY", r) or "")
    empty = ApprovalRules()
    assert "slack.approvers is empty" in (slack_refusal(DAVE, empty) or "")


def test_the_command_line_knows_people_by_uid_not_by_name() -> None:
    r = rules()
    alice, stranger = cli_person(1000, r.cli), cli_person(4242, r.cli)
    assert (alice.actor, alice.slack_user) == ("cli:alice", ALICE)
    assert stranger.actor == "uid:4242"
    assert approval_refusal(alice, r) is None
    assert approval_refusal(stranger, r) == "uid 4242 may not approve: it is not in cli.approvers"


def test_command_line_approval_is_off_while_only_slack_approves() -> None:
    slack_only = ApprovalRules.of(
        Config.model_validate({"slack": {"approvers": {"users": [DAVE]}}})
    )
    problem = approval_refusal(cli_person(1000, slack_only.cli), slack_only)
    assert problem is not None and "approve in Slack" in problem
    nobody = approval_refusal(cli_person(1000, ApprovalRules().cli), ApprovalRules())
    assert nobody == "uid 1000 may not approve: it is not in cli.approvers"


def test_a_cluster_scope_narrows_and_never_widens() -> None:
    r = rules(slack={"approvers_by_cluster": {"shop-prod": {"groups": [PROD_SRE], "cli": ["bob"]}}})
    assert slack_refusal(BOB, r, cluster="shop-prod") is None  # in the scope by group
    refused = slack_refusal(ALICE, r, cluster="shop-prod")
    assert (
        refused
        == "slack:U0ALICE may not approve for cluster shop-prod (not in slack.approvers_by_cluster.shop-prod)"
    )
    assert slack_refusal(ALICE, r, cluster="shop-dev") is None  # no scope there
    assert approval_refusal(cli_person(1001, r.cli), r, cluster="shop-prod") is None  # cli name
    assert approval_refusal(cli_person(1000, r.cli), r, cluster="shop-prod") is not None
    # being in a scope makes nobody an approver: Mallory is listed there, but not an approver
    widened = rules(slack={"approvers_by_cluster": {"shop-prod": {"users": ["U0MALLORY"]}}})
    assert "not in slack.approvers" in (
        slack_refusal("U0MALLORY", widened, cluster="shop-prod") or ""
    )


def test_a_remediation_scope_applies_on_top_of_the_cluster_scope() -> None:
    r = rules(
        slack={
            "approvers_by_cluster": {"shop-prod": {"users": [ALICE, BOB]}},
            "approvers_by_remediation": {"rotate-secret": {"users": [BOB]}},
        }
    )
    kw = {"cluster": "shop-prod", "remediation": "rotate-secret"}
    assert slack_refusal(BOB, r, **kw) is None
    assert "remediation rotate-secret" in (slack_refusal(ALICE, r, **kw) or "")
    assert slack_refusal(ALICE, r, cluster="shop-prod", remediation="add-security-context") is None


def test_every_cluster_needs_a_person_in_every_cluster_scope() -> None:
    r = rules(
        slack={
            "approvers_by_cluster": {
                "shop-prod": {"users": [BOB]},
                "shop-dev": {"users": [ALICE, BOB]},
            }
        }
    )
    assert slack_refusal(BOB, r, cluster=EVERY_CLUSTER) is None
    assert "cluster shop-prod" in (slack_refusal(ALICE, r, cluster=EVERY_CLUSTER) or "")


def test_the_requester_never_approves_under_another_name() -> None:
    r = rules()
    alice_cli, alice_slack = cli_person(1000, r.cli), slack_person(ALICE, r.cli)
    assert alice_slack.is_("cli:alice") and alice_slack.is_("uid:1000")
    assert alice_cli.is_("slack:U0ALICE")
    own = "a requester cannot approve their own request"
    assert approval_refusal(alice_cli, r, requester="slack:U0ALICE") == (
        f"{own} (requested as slack:U0ALICE)"
    )
    assert slack_refusal(ALICE, r, requester="cli:alice") == f"{own} (requested as cli:alice)"
    assert slack_refusal(ALICE, r, requester="uid:1000") == f"{own} (requested as uid:1000)"
    assert approval_refusal(alice_cli, r, requester="cli:alice") == own
    assert approval_refusal(alice_cli, r, requester="slack:U0BOB") is None
    # unless the remediation allows it
    allowed = rules(remediation={"allow_self_approval": ["add-security-context"]})
    alice = cli_person(1000, allowed.cli)
    kw = {"requester": "slack:U0ALICE", "remediation": "add-security-context"}
    assert approval_refusal(alice, allowed, **kw) is None


def test_a_group_that_cannot_be_read_refuses_with_the_reason() -> None:
    r = rules(slack={"approvers_by_cluster": {"shop-prod": {"groups": [PROD_SRE]}}})

    def broken(group: str) -> Collection[str]:
        if group == PROD_SRE:
            raise RuntimeError("usergroups.users.list failed")
        return GROUPS[group]

    problem = approval_refusal(slack_person(DAVE, r.cli), r, cluster="shop-prod", members=broken)
    assert problem is not None and "cannot tell whether slack:U0DAVE" in problem
    # on the command line groups are never read: a person not named otherwise is refused
    problem = approval_refusal(cli_person(1000, r.cli), r, cluster="shop-prod")
    assert problem is not None and "cannot be read here" in problem


ACCESS = """\
clusters: [{name: shop-prod, context: prod}]
slack:
  approvers: {groups: [S0SRE]}
  approvers_by_cluster:
    shop-prod: {users: [U0BOB], cli: [alice]}
  approvers_by_remediation:
    rotate-secret: {groups: [S0SECRETS]}
cli:
  approvers:
    - {uid: 1000, name: alice, slack_user: U0ALICE}
exceptions:
  max_days: 30
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "okeguard.yaml"
    path.write_text(text)
    return path


def test_access_settings_are_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ACCESS))
    assert config.cli.by_uid(1000) is not None and config.cli.by_uid(1001) is None
    assert config.slack.approvers_by_cluster["shop-prod"].cli == ("alice",)
    assert config.exceptions.max_days == 30
    assert Config().exceptions.max_days == 90


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        (
            "shop-prod: {users",
            "shop-prd: {users",
            "slack.approvers_by_cluster: 'shop-prd' is not a configured cluster (did you mean 'shop-prod'?)",
        ),
        (
            "rotate-secret:",
            "rotate-secrets:",
            "slack.approvers_by_remediation: 'rotate-secrets' is not a remediation id (did you mean 'rotate-secret'?)",
        ),
        (
            "cli: [alice]",
            "cli: [carol]",
            "slack.approvers_by_cluster.shop-prod.cli: 'carol' is not in cli.approvers",
        ),
        ("{users: [U0BOB], cli: [alice]}", "{}", "approvers_by_cluster.shop-prod names nobody"),
        ("users: [U0BOB]", "users: [bob]", "'bob' is not a Slack user ID"),
        (
            "uid: 1000",
            "uid: -1",
            "cli.approvers[0].uid: Input should be greater than or equal to 0",
        ),
        ("name: alice,", "name: Alice Smith,", "name 'Alice Smith' is not a short lower-case name"),
        ("slack_user: U0ALICE", "slack_user: alice", "slack_user 'alice' is not a Slack user ID"),
        (
            "max_days: 30",
            "max_days: 0",
            "exceptions.max_days: Input should be greater than or equal to 1",
        ),
        (
            "max_days: 30",
            "max_day: 30",
            "unknown key 'exceptions.max_day' (did you mean 'max_days'?)",
        ),
        (
            "    - {uid: 1000",
            "    - {uid: 7, name: alice}\n    - {uid: 1000",
            "cli.approvers: name 'alice' is listed twice",
        ),
    ],
)
def test_access_errors_name_the_key(tmp_path: Path, replace: str, by: str, expected: str) -> None:
    text = ACCESS.replace(replace, by)
    assert text != ACCESS
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'okeguard.yaml'}: ")
    assert expected in message and "\n" not in message


def test_scopes_without_any_approver_are_an_error(tmp_path: Path) -> None:
    text = "clusters: [{name: a}]\nslack:\n  approvers_by_cluster:\n    a: {users: [U0BOB]}\n"
    with pytest.raises(ConfigError, match="nobody could approve"):
        load_config(write(tmp_path, text))


def test_the_access_keys_are_documented() -> None:
    from okeguard.config_access import CliApprover, ExceptionsConfig, ScopedApprovers

    docs = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    keys = [f"`cli.approvers[].{name}`" for name in CliApprover.model_fields]
    keys += [f"`exceptions.{name}`" for name in ExceptionsConfig.model_fields]
    keys += [f"`slack.{name}.<" for name in ("approvers_by_cluster", "approvers_by_remediation")]
    keys += [f".{name}`" for name in ScopedApprovers.model_fields]
    assert [key for key in keys if key not in docs] == []
