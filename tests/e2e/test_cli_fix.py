"""``okeguard fix`` and ``okeguard remediations`` through the console script."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Run, one_error_line
from tests.fakes.kube_api import FakeKubeApi, running_fake_kube_api
from tests.unit.factories import bare_container, namespace, workload

WEB = workload(containers=[bare_container("web", image="fra.ocir.io/shop/web:1")])


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeKubeApi]:
    with running_fake_kube_api([namespace("shop"), WEB]) as api:
        api.write_kubeconfig(tmp_path / "kubeconfig", context="fake")
        yield api


def _env(tmp_path: Path, user: str, **extra: str) -> dict[str, str]:
    return {
        "OKEGUARD_DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
        "KUBECONFIG": str(tmp_path / "kubeconfig"),
        "USER": user,
        "LOGNAME": user,
        **extra,
    }


def _config(tmp_path: Path, cli_user: str | None = None, **remediation: object) -> str:
    """The configuration; with ``cli_user``, this process's OS uid is that approver."""
    path = tmp_path / f"{cli_user or 'okeguard'}.yaml"
    doc: dict[str, object] = {
        "clusters": [
            {"name": "fake", "context": "fake", "kubeconfig": str(tmp_path / "kubeconfig")}
        ],
        "remediation": {"poll_interval_seconds": 0.01, "rollout_timeout_seconds": 5, **remediation},
    }
    if cli_user:
        doc["cli"] = {"approvers": [{"uid": os.getuid(), "name": cli_user}]}
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return str(path)


def test_preview_on_the_demo_shows_the_plan_and_diff(run: Run) -> None:
    result = run("fix", "k8s.run-as-root:platform/shop-admin", "--demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "add-security-context (variant default)" in out
    assert "1. harden the pod template of Deployment platform/shop-admin" in out
    assert "+    runAsNonRoot: true" in out and "-    privileged: true" in out
    assert "may need root" in out  # it listens on port 80


def test_preview_as_json_carries_the_hash_and_is_stable(run: Run) -> None:
    first = json.loads(
        run("fix", "k8s.run-as-root:platform/shop-admin", "--demo", "--format", "json").stdout
    )
    again = json.loads(run("fix", first["finding"][:10], "--demo", "--format", "json").stdout)
    assert first == again
    assert len(first["hash"]) == 64 and first["schema"] == "okeguard.plan/v1"
    conservative = json.loads(
        run(
            "fix", first["finding"][:10], "--demo", "--variant", "conservative", "--format", "json"
        ).stdout
    )
    assert conservative["hash"] != first["hash"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["fix", "zzzzzz", "--demo"], "no finding matches 'zzzzzz'"),
        (["fix", "abc", "--demo"], "at least 6 characters"),
        (["fix", "k8s.host-namespaces:platform/shop-admin", "--demo"], "no automatic fix"),
        (
            ["fix", "k8s.run-as-root:platform/shop-admin", "--demo", "--apply"],
            "a snapshot cannot be changed",
        ),
        (
            ["fix", "k8s.run-as-root:platform/shop-admin", "--demo", "--variant", "bold"],
            "unknown variant 'bold'",
        ),
        (["fix", "--rollback", "1", "--demo"], "a snapshot cannot be changed"),
    ],
)
def test_bad_fix_requests_are_one_line(run: Run, args: list[str], needle: str) -> None:
    assert needle in one_error_line(run(*args))


def test_apply_then_rollback_from_the_command_line(
    run: Run, cluster: FakeKubeApi, tmp_path: Path
) -> None:
    config = _config(tmp_path)
    env = _env(tmp_path, "alice")
    applied = run(
        "fix", "k8s.run-as-root:shop/web", "--config", config, "--apply", "--yes", env=env
    )
    assert applied.returncode == 0, applied.stderr
    assert "Request 1: applied" in applied.stderr
    sc = cluster.get_object("Deployment", "web", "shop")["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert sc["securityContext"]["runAsNonRoot"] is True
    listed = json.loads(run("remediations", "list", "--format", "json", env=env).stdout)
    me = f"uid:{os.getuid()}"  # the OS uid, not $USER
    assert [(r["id"], r["state"], r["requester"], r["approver"]) for r in listed] == [
        (1, "applied", me, me)
    ]
    shown = run("remediations", "show", "1", env=env)
    assert "remediation.step.applied" in shown.stdout and "remediation.verified" in shown.stdout
    rolled = run("fix", "--rollback", "1", "--config", config, "--yes", env=env)
    assert rolled.returncode == 0, rolled.stderr
    after = cluster.get_object("Deployment", "web", "shop")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert "securityContext" not in after
    verify = run("audit", "verify", env=env)
    assert verify.returncode == 0, verify.stderr


def test_required_approval_takes_a_second_person(
    run: Run, cluster: FakeKubeApi, tmp_path: Path
) -> None:
    # two approvers; each test run has one uid, so each person has their own configuration
    alice = _config(tmp_path, "alice", cli_requires_approval=True)
    bob = _config(tmp_path, "bob", cli_requires_approval=True)
    env = _env(tmp_path, "bob")  # $USER names nobody
    refused = run("fix", "k8s.run-as-root:shop/web", "--config", alice, "--apply", "--yes", env=env)
    assert refused.returncode == 2 and "cli_requires_approval is on" in refused.stderr
    requested = run("fix", "k8s.run-as-root:shop/web", "--config", alice, "--request", env=env)
    assert requested.returncode == 0, requested.stderr
    assert "Request 1 is waiting for approval" in requested.stderr
    shown = json.loads(run("remediations", "show", "1", "--format", "json", env=env).stdout)
    assert shown["requester"] == "cli:alice"
    approve = ("remediations", "approve", "1", "--hash", shown["plan_hash"])
    own = run(*approve, "--config", alice, env=env)
    assert "a requester cannot approve their own request" in one_error_line(own)
    approved = run(*approve, "--config", bob, env=_env(tmp_path, "alice"))
    assert approved.returncode == 0 and "approved by cli:bob" in approved.stderr
    applied = run("remediations", "apply", "1", "--config", alice, "--yes", env=env)
    assert applied.returncode == 0, applied.stderr
    assert "Request 1: applied" in applied.stderr
    assert (
        run("remediations", "reconcile", "--config", alice, env=env).stderr.strip()
        == "Nothing to reconcile."
    )


def test_a_failed_fix_exits_one(run: Run, cluster: FakeKubeApi, tmp_path: Path) -> None:
    cluster.set_rollout("Deployment", "shop", "web", "crashloop")
    config = _config(tmp_path)
    result = run(
        "fix",
        "k8s.run-as-root:shop/web",
        "--config",
        config,
        "--apply",
        "--yes",
        env=_env(tmp_path, "alice"),
    )
    assert result.returncode == 1
    assert "rolled-back" in result.stderr and "CrashLoopBackOff" in result.stderr
    assert "Traceback" not in result.stderr
