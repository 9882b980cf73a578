"""The OKE check corrections through ``okeguard scan`` (issue 12, part 6): the load-balancer
checks on manifests and snapshots, and timestamps YAML reads as datetimes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from okeguard.inventory.snapshot import save_snapshot
from tests.e2e.conftest import Run
from tests.helpers import inventory
from tests.unit.oke_factories import service

LB_CHECKS = {"oke.lb-security-list-mode", "oke.public-load-balancer", "oke.lb-without-tls"}

LB_MANIFEST = """\
apiVersion: v1
kind: Service
metadata:
  name: shop-lb
  namespace: shop
spec:
  type: LoadBalancer
  selector:
    app: shop
  ports:
    - name: https
      port: 443
      targetPort: 8443
---
apiVersion: v1
kind: Service
metadata:
  name: guarded
  namespace: shop
  annotations:
    oci.oraclecloud.com/security-rule-management-mode: nsg
    service.beta.kubernetes.io/load-balancer-source-ranges: "10.0.0.0/8"
    service.beta.kubernetes.io/oci-load-balancer-ssl-ports: "443"
spec:
  type: LoadBalancer
  selector:
    app: guarded
  ports:
    - port: 443
"""


def _scan(run: Run, *args: str) -> dict[str, Any]:
    result = run("scan", *args, "--format", "json")
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_a_load_balancer_manifest_gets_the_load_balancer_findings(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "lb.yaml"
    path.write_text(LB_MANIFEST, encoding="utf-8")
    report = _scan(run, "--manifests", str(path))
    found = {
        (f["check_id"], f["resource"]["name"])
        for f in report["findings"]
        if f["check_id"].startswith("oke.")
    }
    # the guarded Service (NSG mode in lower case, ranges from the annotation, TLS) passes all
    assert found == {(check_id, "shop-lb") for check_id in LB_CHECKS}
    assert set(report["summary"]["checks_run"]) >= LB_CHECKS
    assert not LB_CHECKS & set(report["summary"]["checks_not_applicable"])
    origins = {f["origin"] for f in report["findings"] if f["check_id"] in LB_CHECKS}
    assert origins == {f"{path}:1"}


def test_a_snapshot_without_the_oci_side_gets_the_load_balancer_findings(
    run: Run, tmp_path: Path
) -> None:
    path = tmp_path / "cluster.jsonl"
    save_snapshot(inventory([service("shop-lb")], whole_cluster=True), path)
    report = _scan(run, "--snapshot", str(path))
    assert {f["check_id"] for f in report["findings"] if f["check_id"].startswith("oke.")} == (
        LB_CHECKS
    )


def _unquoted(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _secret(name: str, created: str, rotated: str | None = None) -> str:
    annotations = f"  annotations:\n    okeguard.io/rotated-at: {rotated}\n" if rotated else ""
    return (
        "apiVersion: v1\nkind: Secret\ntype: Opaque\n"
        f"metadata:\n  name: {name}\n  namespace: shop\n  creationTimestamp: {created}\n"
        f"{annotations}data:\n  password: aHVudGVyMg==\n"
    )


def test_unquoted_timestamps_in_a_manifest_are_read(run: Run, tmp_path: Path) -> None:
    recent = _unquoted(datetime.now(UTC) - timedelta(days=2))
    documents = [
        _secret("old", "2020-01-01T00:00:00Z"),  # YAML makes a datetime of it
        _secret("old-date-only", "2020-01-01"),  # and a date of this
        _secret("quoted-old", '"2020-01-01T00:00:00Z"'),
        _secret("rotated-recently", "2020-01-01T00:00:00Z", rotated=recent),
        _secret("quoted-rotated-recently", '"2020-01-01T00:00:00Z"', rotated=recent),
        _secret("new", recent),
    ]
    path = tmp_path / "secrets.yaml"
    path.write_text("---\n".join(documents), encoding="utf-8")
    report = _scan(run, "--manifests", str(path), "--check", "k8s.stale-secret")
    stale = {f["resource"]["name"]: f["message"] for f in report["findings"]}
    assert set(stale) == {"old", "old-date-only", "quoted-old"}
    assert all("(2020-01-01)" in message for message in stale.values())
