"""Who approves on the command line (issue 11, parts 3 and 5), through the real console script,
on SQLite and PostgreSQL: the OS uid (never ``$USER``) named by ``cli.approvers``, the Slack
approvers' rule and its scopes, requester ≠ approver across front doors, and exceptions under
the same governance. The other person of each story acts in-process (another front door, or
another uid), since every command here runs as the test's own uid."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from okeguard.approval_policy import ApprovalRules, slack_person
from okeguard.audit.chain import verify_chain
from okeguard.audit.models import AuditEvent, ExceptionRule, RemediationRequest
from okeguard.audit.types import utcnow
from okeguard.config import Config, RemediationConfig
from okeguard.exception_governance import Waiver, add_governed
from okeguard.remediations.approvals import request_fix
from okeguard.remediations.plan import Plan
from tests.e2e.conftest import Run, one_error_line
from tests.fakes.kube_api import FakeKubeApi
from tests.helpers import deployment
from tests.integration import database as databases
from tests.integration.database import Database

# the fixtures: every test runs on a SQLite file and on a PostgreSQL schema
database, database_url, postgres_url = (
    databases.database,
    databases.database_url,
    databases.postgres_url,
)

UID = os.getuid()
OTHER_UID = UID + 4242
SPOOFED = {"USER": "alice", "LOGNAME": "alice"}


def _config(tmp_path: Path, name: str, **doc: Any) -> str:
    """A configuration file with clusters shop-prod and shop-dev plus ``doc``."""
    path = tmp_path / f"{name}.yaml"
    base: dict[str, Any] = {"clusters": [{"name": "shop-prod"}, {"name": "shop-dev"}]}
    path.write_text(yaml.safe_dump({**base, **doc}), encoding="utf-8")
    return str(path)


def _me_as(name: str, slack_user: str | None = None) -> dict[str, Any]:
    """``cli:`` mapping this process's uid to ``name``."""
    entry: dict[str, Any] = {"uid": UID, "name": name}
    if slack_user:
        entry["slack_user"] = slack_user
    return {"approvers": [entry]}


def _env(database: Database, **extra: str) -> dict[str, str]:
    return {"OKEGUARD_DATABASE_URL": database.url, **SPOOFED, **extra}


def _request(database: Database, requester: str, cluster: str = "shop-prod") -> tuple[int, str]:
    """A pending request by ``requester`` (another person, another front door): (id, hash)."""
    plan = Plan(
        remediation="add-security-context",
        cluster=cluster,
        check_id="k8s.run-as-root",
        finding=(cluster[:4] * 16)[:64],
        target={"kind": "Deployment", "namespace": "shop", "name": "web"},
        operations=(),
        diff="",
    )
    request = request_fix(database.sessions, plan, requester, RemediationConfig())
    return request.id, plan.hash


def _events(database: Database, action: str) -> list[AuditEvent]:
    with database.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _state(database: Database, request_id: int) -> tuple[str, str | None]:
    with database.sessions() as session:
        request = session.get(RemediationRequest, request_id)
        assert request is not None
        return request.state, request.approver


def test_a_spoofed_user_name_approves_nothing(run: Run, tmp_path: Path, database: Database) -> None:
    request_id, plan_hash = _request(database, "slack:U0CAROL")
    # "alice" is an approver, but by uid; $USER=alice changes nothing
    stranger = _config(
        tmp_path, "stranger", cli={"approvers": [{"uid": OTHER_UID, "name": "alice"}]}
    )
    refused = run(
        "remediations",
        "approve",
        str(request_id),
        *("--hash", plan_hash, "--config", stranger),
        env=_env(database),
    )
    assert one_error_line(refused).endswith(
        f"uid {UID} may not approve: it is not in cli.approvers"
    )
    [event] = _events(database, "remediation.refused")
    assert event.actor == f"uid:{UID}" and "not in cli.approvers" in event.payload
    assert _state(database, request_id) == ("pending-approval", None)
    reject = run(
        "remediations", "reject", str(request_id), "--config", stranger, env=_env(database)
    )
    assert "may not approve" in one_error_line(reject)

    mine = _config(tmp_path, "mine", cli=_me_as("alice"))
    approved = run(
        "remediations",
        "approve",
        str(request_id),
        *("--hash", plan_hash, "--config", mine, "--reason", "reviewed"),
        env=_env(database, USER="mallory", LOGNAME="mallory"),
    )
    assert approved.returncode == 0, approved.stderr
    assert f"Request {request_id}: approved by cli:alice." in approved.stderr
    assert _state(database, request_id) == ("approved", "cli:alice")
    assert [e.actor for e in _events(database, "remediation.approved")] == ["cli:alice"]
    huge = run(
        "remediations",
        "approve",
        "99999999999999999999",
        *("--hash", plan_hash, "--config", mine),
        env=_env(database),
    )
    assert "no remediation request 99999999999999999999" in one_error_line(huge)
    with database.sessions() as session:
        assert verify_chain(session) is None


def test_the_command_line_defers_to_slack_when_only_slack_approves(
    run: Run, tmp_path: Path, database: Database
) -> None:
    request_id, plan_hash = _request(database, "slack:U0CAROL")
    slack_only = _config(tmp_path, "slack", slack={"approvers": {"users": ["U0BOB"]}})
    result = run(
        "remediations",
        "approve",
        str(request_id),
        *("--hash", plan_hash, "--config", slack_only),
        env=_env(database),
    )
    assert "approving on the command line is off" in one_error_line(result)
    assert "approve in Slack" in result.stderr
    [event] = _events(database, "remediation.refused")
    assert "approve in Slack" in event.payload
    assert _state(database, request_id)[0] == "pending-approval"


def test_a_slack_requester_cannot_approve_their_request_on_the_command_line(
    run: Run, tmp_path: Path, database: Database
) -> None:
    request_id, plan_hash = _request(database, "slack:U0ALICE")
    alice = _config(tmp_path, "alice", cli=_me_as("alice", slack_user="U0ALICE"))
    own = run(
        "remediations",
        "approve",
        str(request_id),
        *("--hash", plan_hash, "--config", alice),
        env=_env(database),
    )
    assert one_error_line(own).endswith(
        "a requester cannot approve their own request (requested as slack:U0ALICE)"
    )
    bob = _config(tmp_path, "bob", cli=_me_as("bob", slack_user="U0BOB"))
    approved = run(
        "remediations",
        "approve",
        str(request_id),
        *("--hash", plan_hash, "--config", bob),
        env=_env(database),
    )
    assert approved.returncode == 0, approved.stderr
    assert _state(database, request_id) == ("approved", "cli:bob")


def test_a_cluster_scope_binds_the_command_line(
    run: Run, tmp_path: Path, database: Database
) -> None:
    prod, prod_hash = _request(database, "slack:U0CAROL", cluster="shop-prod")
    dev, dev_hash = _request(database, "slack:U0CAROL", cluster="shop-dev")
    config = _config(
        tmp_path,
        "scoped",
        cli=_me_as("alice"),
        slack={
            "approvers": {"users": ["U0DAVE"]},
            "approvers_by_cluster": {
                "shop-prod": {"users": ["U0DAVE"]},
                "shop-dev": {"cli": ["alice"]},
            },
        },
    )
    refused = run(
        "remediations",
        "approve",
        str(prod),
        *("--hash", prod_hash, "--config", config),
        env=_env(database),
    )
    assert one_error_line(refused).endswith(
        "cli:alice may not approve for cluster shop-prod (not in slack.approvers_by_cluster.shop-prod)"
    )
    approved = run(
        "remediations",
        "approve",
        str(dev),
        *("--hash", dev_hash, "--config", config),
        env=_env(database),
    )
    assert approved.returncode == 0, approved.stderr
    assert _state(database, prod)[0] == "pending-approval"
    assert _state(database, dev) == ("approved", "cli:alice")
    assert [e.actor for e in _events(database, "remediation.refused")] == ["cli:alice"]


def _exceptions(run: Run, database: Database, *args: str) -> Any:
    return run("exceptions", *args, env=_env(database))


def test_exceptions_are_bounded_and_fleet_wide_ones_wait_for_an_approver(
    run: Run, tmp_path: Path, database: Database
) -> None:
    stranger = _config(tmp_path, "stranger", exceptions={"max_days": 30})
    alice = _config(tmp_path, "alice", cli=_me_as("alice"), exceptions={"max_days": 30})
    add = ("add", "--check", "k8s.run-as-root", "--namespace", "shop", "--reason", "vendor")
    for too_long in ("99999999d", "9" * 40 + "d", "9999-12-31", "31d"):
        result = _exceptions(run, database, *add, "--expires", too_long, "--config", stranger)
        assert "an exception lasts at most 30 days (exceptions.max_days)" in one_error_line(result)
    refusals = _events(database, "exception.refused")
    assert len(refusals) == 4 and {e.actor for e in refusals} == {f"uid:{UID}"}
    missing = _exceptions(run, database, "add", "--check", "k8s.run-as-root", "--reason", "x")
    assert "--expires" in one_error_line(missing)

    # no cluster, no resource name: the whole fleet; it waits for an approver
    added = _exceptions(run, database, *add, "--expires", "20d", "--config", stranger)
    assert added.returncode == 0, added.stderr
    mine = int(added.stdout)
    assert "(pending-approval)" in added.stderr and f"exceptions approve {mine}" in added.stderr
    listed = json.loads(_exceptions(run, database, "list", "--format", "json").stdout)
    assert [(r["id"], r["state"], r["author"]) for r in listed] == [
        (mine, "pending-approval", f"uid:{UID}")
    ]
    assert "pending-approval" in _exceptions(run, database, "list").stdout
    # its author does not approve it, even once their uid is an approver
    own = _exceptions(run, database, "approve", str(mine), "--config", alice)
    assert f"(requested as uid:{UID})" in one_error_line(own)

    # Mallory's waiver, made in Slack: recorded scans exempt it only once approved
    manifests = tmp_path / "k8s"
    manifests.mkdir()
    (manifests / "web.yaml").write_text(yaml.safe_dump(deployment("web", "shop")))
    theirs = add_governed(
        database.sessions,
        Waiver("k8s.run-as-root", "vendor image", utcnow() + timedelta(days=10), namespace="shop"),
        slack_person("U0MALLORY", Config().cli),
        ApprovalRules(),
        Config().exceptions,
    )
    assert theirs.state == "pending-approval"
    assert _run_as_root_status(run, database, manifests) == "open"
    approved = _exceptions(run, database, "approve", str(theirs.id), "--config", alice)
    assert approved.returncode == 0, approved.stderr
    assert f"Exception {theirs.id}: active by cli:alice." in approved.stderr
    again = _exceptions(run, database, "approve", str(theirs.id), "--config", alice)
    assert "is active, not pending approval" in one_error_line(again)
    assert len(_events(database, "exception.approved")) == 1
    assert _run_as_root_status(run, database, manifests) == "exempt"

    # ids that cannot exist are refused in one line, on PostgreSQL too
    for verb in ("remove", "approve", "reject"):
        huge = _exceptions(run, database, verb, "99999999999999999999", "--config", alice)
        assert "no exception 99999999999999999999" in one_error_line(huge)
    removed = _exceptions(run, database, "remove", str(mine))
    assert removed.returncode == 0, removed.stderr
    with database.sessions() as session:
        states = {r.id: r.state for r in session.scalars(select(ExceptionRule))}
        assert states == {theirs.id: "active"}
        assert verify_chain(session) is None
    actors = {
        e["actor"]
        for e in json.loads(run("audit", "list", "--format", "json", env=_env(database)).stdout)
    }
    assert "alice" not in actors and actors >= {f"uid:{UID}", "cli:alice", "slack:U0MALLORY"}
    verified = run("audit", "verify", env=_env(database))  # the chain and the tables agree
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _run_as_root_status(run: Run, database: Database, manifests: Path) -> str:
    recorded = run("scan", "--manifests", str(manifests), "--record", "-q", env=_env(database))
    assert recorded.returncode in (0, 1), recorded.stderr
    listed = json.loads(run("findings", "list", "--format", "json", env=_env(database)).stdout)
    [status] = {f["status"] for f in listed if f["check_id"] == "k8s.run-as-root"}
    return str(status)


def test_the_command_line_approves_only_the_whole_hash(
    run: Run, tmp_path: Path, database: Database
) -> None:
    request_id, plan_hash = _request(database, "slack:U0CAROL")
    mine = _config(tmp_path, "mine", cli=_me_as("alice"))
    missing = run("remediations", "approve", str(request_id), "--config", mine, env=_env(database))
    assert missing.returncode == 2 and "--hash" in missing.stderr
    assert "Traceback" not in missing.stderr
    for named in (plan_hash[:12], plan_hash[:63], "", "0" * 64):
        refused = run(
            "remediations",
            "approve",
            str(request_id),
            *("--hash", named, "--config", mine),
            env=_env(database),
        )
        assert "hash" in one_error_line(refused), named
    assert _state(database, request_id) == ("pending-approval", None)
    assert len(_events(database, "remediation.refused")) == 4


def test_fix_apply_is_held_to_the_approver_policy_once_approvers_exist(
    run: Run, tmp_path: Path, database: Database, cluster: FakeKubeApi
) -> None:
    """Approving one's own fix with ``fix --apply`` is not a way around the approver rules."""
    path = tmp_path / "slack-approves.yaml"
    doc = {
        "clusters": [
            {"name": "prod", "context": "fake", "kubeconfig": str(tmp_path / "kubeconfig")}
        ],
        "slack": {"approvers": {"users": ["U0BOB"]}},
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    before = cluster.get_object("Deployment", "web", "shop")["spec"]
    args = ("fix", "k8s.run-as-root:shop/web", "--config", str(path), "--cluster", "prod")
    result = run(*args, "--apply", "--yes", env=_env(database))
    # the plan is previewed on stdout, then refused in one line before anything is recorded
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "approving on the command line is off" in line and "--request" in line
    assert _events(database, "remediation.proposed") == []
    assert cluster.get_object("Deployment", "web", "shop")["spec"] == before
