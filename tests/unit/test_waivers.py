"""Waivers: the ignore file (parsing, validation, one-line errors), discovery, matching as a
recorded scan matches exceptions, expiry, applying them to a report, --severity, and the
warning for an unknown check id in an ``okeguard.io/exempt`` annotation."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from okeguard.checks.engine import run_checks
from okeguard.checks.model import Finding, ResourceRef, Severity, Status
from okeguard.config import Config
from okeguard.errors import ConfigError, UsageError
from okeguard.ignore_file import (
    FILE_MAX_DAYS,
    IGNORE_FILE_NAME,
    discover_ignore_file,
    load_ignore_file,
)
from okeguard.scan_waivers import ScanWaivers, scan_waivers
from okeguard.scanning import ScanReport, merge_reports, scan_inventory
from okeguard.waivers import (
    Waiver,
    apply_waivers,
    configured_database_url,
    filter_severity,
    parse_severities,
)
from tests.helpers import NOW, deployment, inventory

ROOT = "k8s.run-as-root"


def _write(tmp_path: Path, text: str, name: str = IGNORE_FILE_NAME) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _load(tmp_path: Path, text: str) -> list[Waiver]:
    return load_ignore_file(_write(tmp_path, text), now=NOW)


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    message = str(err.value)
    assert "\n" not in message
    return message


def _report(*docs: dict[str, object], cluster: str = "test") -> ScanReport:
    return scan_inventory(inventory(docs, cluster=cluster), Config(), now=NOW)


# ---------------------------------------------------------------- the file


def test_entries_become_waivers_with_their_line(tmp_path: Path) -> None:
    waivers = _load(
        tmp_path,
        """\
ignore:
  - check: k8s.run-as-root
    resource: logging/fluent-bit
    reason: reads /var/log on the node; SEC-1234
    expires: 2026-12-31
  - check: k8s.privileged
    resource: "DaemonSet/kube-system/*"
    cluster: shop-prod
    reason: CNI agent
    expires: "2027-01-15T10:00:00+01:00"
  - check: k8s.cluster-admin-binding
    kind: ClusterRoleBinding
    name: break-glass
    reason: break-glass access, reviewed monthly
    expires: 2027-02-01
""",
    )
    first, second, third = waivers
    assert first == Waiver(
        ROOT,
        "reads /var/log on the node; SEC-1234",
        datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        namespace="logging",
        name="fluent-bit",
        origin=f"{tmp_path / IGNORE_FILE_NAME}:2",
    )
    assert (second.kind, second.namespace, second.name, second.cluster) == (
        "DaemonSet",
        "kube-system",
        None,  # '*': any name
        "shop-prod",
    )
    assert second.expires_at == datetime(2027, 1, 15, 9, 0, tzinfo=UTC)
    assert (third.kind, third.namespace, third.name) == ("ClusterRoleBinding", None, "break-glass")
    assert third.origin is not None and third.origin.endswith(":11")


def test_an_empty_file_or_list_waives_nothing(tmp_path: Path) -> None:
    assert _load(tmp_path, "") == []
    assert _load(tmp_path, "ignore:\n") == []
    assert _load(tmp_path, "ignore: []\n") == []


ENTRY = "ignore:\n  - check: {check}\n    resource: {resource}\n    reason: {reason}\n    expires: {expires}\n"


def _entry(**values: str) -> str:
    fields = {
        "check": ROOT,
        "resource": "shop/web",
        "reason": "legacy image",
        "expires": "2027-01-31",
        **values,
    }
    return ENTRY.format(**fields)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            _entry(check="k8s.run-as-rot"),
            ":2: check: unknown check id 'k8s.run-as-rot' (did you mean 'k8s.run-as-root'?)",
        ),
        (_entry(reason='""'), ":4: reason: required"),
        ("ignore:\n  - check: k8s.run-as-root\n    resource: shop/web\n", ":2: reason: required"),
        (
            "ignore:\n  - check: k8s.run-as-root\n    resource: shop/web\n    reason: x\n",
            ":2: expires: required: a date at most 365 days away",
        ),
        (_entry(expires="next week"), ":5: expires: expected a date like 2026-12-31"),
        (
            _entry(expires="2028-01-01"),
            ":5: expires: a waiver in a file lasts at most 365 days: choose a date by 2027-11-20",
        ),
        (_entry(resource="web"), ":3: resource: expected namespace/name or Kind/namespace/name"),
        (_entry(resource="a/b/c/d"), ":3: resource: expected namespace/name"),
        (_entry(resource="shop/"), ":3: resource: expected namespace/name"),
        (
            _entry(resource="shop/*"),
            ":3: resource: names neither a resource name nor a cluster, so it would waive "
            "k8s.run-as-root everywhere",
        ),
        (_entry() + "    reasn: typo\n", ":6: reasn: unknown key (did you mean 'reason'?)"),
        (_entry() + "    name: web\n", ":3: resource: give either resource or name, not both"),
        (_entry() + "    check: k8s.privileged\n", ":6: check: given twice"),
        (_entry(reason="[a, b]"), ":4: reason: expected a single value"),
        (_entry(reason="yes"), ":4: reason: expected text, got True"),
        ("ignore:\n  - k8s.run-as-root\n", ":2: ignore: each entry is a mapping"),
        ("ignore: k8s.run-as-root\n", ":1: ignore: expected a list of entries"),
        ("- check: x\n", ":1: expected a mapping with 'ignore:'"),
        ("ignores: []\n", ":1: ignores: unknown key; expected ignore"),
        ("ignore:\n  - check: [\n", ":3: invalid YAML"),
    ],
)
def test_a_mistake_is_one_line_naming_file_line_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    message = _error(tmp_path, text)
    assert message.startswith(str(tmp_path / IGNORE_FILE_NAME) + ":"), message
    assert expected in message, message


def test_a_missing_or_special_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_ignore_file(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="is a directory, expected a YAML ignore file"):
        load_ignore_file(tmp_path)


def test_the_longest_expiry_is_a_year_or_what_the_caller_allows(tmp_path: Path) -> None:
    last = (NOW + timedelta(days=FILE_MAX_DAYS)).date().isoformat()
    assert _load(tmp_path, _entry(expires=last))[0].expires_at is not None
    path = _write(tmp_path, _entry(expires=last))
    with pytest.raises(ConfigError, match="at most 30 days"):
        load_ignore_file(path, now=NOW, max_days=30)


def test_an_expired_entry_loads_and_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    waivers = _load(tmp_path, _entry(expires="2026-01-31", resource="shop/web"))
    report = _report(deployment("web"))
    assert any(f.check_id == ROOT and f.status is Status.OPEN for f in report.findings)
    with caplog.at_level(logging.WARNING, logger="okeguard.waivers"):
        waived = apply_waivers(report, waivers, NOW)
    assert waived.findings == report.findings
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / IGNORE_FILE_NAME}:2: the waiver of {ROOT} expired on 2026-01-31; "
        "ignored (renew or remove it)"
    ]


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.dates(),
    st.sampled_from([ROOT, "k8s.nope", "shop/web", "a/b/c", "*", "Kind/ns/*", "2026-13-45"]),
    st.text(max_size=12),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=2),
    st.dictionaries(st.text(max_size=3), SCALARS, max_size=2),
)
ENTRIES = st.dictionaries(
    st.one_of(
        st.sampled_from(["check", "resource", "kind", "name", "cluster", "reason", "expires"]),
        st.text(max_size=5),
    ),
    VALUES,
    max_size=7,
)
DOCUMENTS = st.one_of(
    st.fixed_dictionaries({"ignore": st.lists(st.one_of(ENTRIES, SCALARS), max_size=3)}).map(
        yaml.safe_dump
    ),
    st.text(alphabet="ignore:-[]{}!&*?|>'\"#\n k8s./2026", max_size=80),
)


@given(DOCUMENTS)
def test_any_file_gives_waivers_or_one_line_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / IGNORE_FILE_NAME
        path.write_text(text)
        try:
            waivers = load_ignore_file(path, now=NOW)
        except ConfigError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(path))
        else:
            assert all(w.reason and w.expires_at and not w.fleet_wide for w in waivers)


# ---------------------------------------------------------------- discovery


def test_discovery_prefers_the_current_directory_then_the_scanned_tree(tmp_path: Path) -> None:
    repo, cwd = tmp_path / "repo", tmp_path / "elsewhere"
    (repo / ".git").mkdir(parents=True)
    (repo / "deploy" / "prod").mkdir(parents=True)
    cwd.mkdir()
    manifest = repo / "deploy" / "prod" / "web.yaml"
    manifest.write_text("{}")
    assert discover_ignore_file([str(manifest)], cwd=cwd) is None
    _write(repo, "ignore: []\n")
    assert discover_ignore_file([str(manifest)], cwd=cwd) == repo / IGNORE_FILE_NAME
    assert discover_ignore_file(["-", str(repo / "deploy")], cwd=cwd) == repo / IGNORE_FILE_NAME
    _write(repo / "deploy", "ignore: []\n")
    assert (
        discover_ignore_file([str(repo / "deploy")], cwd=cwd) == repo / "deploy" / IGNORE_FILE_NAME
    )
    _write(cwd, "ignore: []\n")
    assert discover_ignore_file([str(manifest)], cwd=cwd) == Path(IGNORE_FILE_NAME)
    assert discover_ignore_file(["-"], cwd=tmp_path) is None


def test_the_database_is_used_only_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    from okeguard.audit.db import ENV_URL
    from okeguard.waivers import DATABASE_URL_ENV

    assert DATABASE_URL_ENV == ENV_URL
    monkeypatch.delenv(ENV_URL, raising=False)
    assert configured_database_url(Config()) is None
    config = Config.model_validate({"database": {"url": "sqlite:////tmp/x.db"}})
    assert configured_database_url(config) == "sqlite:////tmp/x.db"
    monkeypatch.setenv(ENV_URL, "postgresql+psycopg://okeguard@db/okeguard")
    assert configured_database_url(config) == "postgresql+psycopg://okeguard@db/okeguard"


def test_a_scan_takes_the_found_file_and_an_existing_configured_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OKEGUARD_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert scan_waivers(Config()) == ScanWaivers([], [])
    _write(tmp_path, _entry())
    found = scan_waivers(Config(), now=NOW)
    assert [w.origin for w in found.waivers] == [f"{IGNORE_FILE_NAME}:2"]
    assert found.sources == [f"1 from {IGNORE_FILE_NAME}"]
    assert scan_waivers(Config(), discover=False).waivers == []
    named = _write(tmp_path, _entry(resource="shop/api"), "ci-waivers.yaml")
    chosen = scan_waivers(Config(), ignore_file=str(named), now=NOW)
    assert chosen.waivers[0].name == "api"

    absent = tmp_path / "state" / "okeguard.db"
    monkeypatch.setenv("OKEGUARD_DATABASE_URL", f"sqlite:///{absent}")
    none_yet = scan_waivers(Config(), discover=False)
    assert none_yet == ScanWaivers([], [f"no audit database at {absent} yet"])
    assert not absent.parent.exists()  # a scan never creates the database
    report = _report(deployment("web"))
    waived = apply_waivers(report, found.waivers, NOW)
    assert found.summary(report, waived) == (
        f"waivers: 1 from {IGNORE_FILE_NAME}; 1 finding(s) exempt by them"
    )


# ---------------------------------------------------------------- matching and applying


def _finding(check_id: str, cluster: str, kind: str, namespace: str | None, name: str) -> Finding:
    return Finding(
        check_id,
        Severity.HIGH,
        Status.OPEN,
        cluster,
        ResourceRef(kind, namespace, name),
        "m",
        ("P1",),
        "guidance",
        "f" * 32,
    )


PARTS = st.sampled_from([None, "a", "b"])


@given(
    selector=st.tuples(PARTS, PARTS, PARTS, PARTS),
    target=st.tuples(
        st.sampled_from(["a", "b"]), st.sampled_from(["a", "b"]), PARTS, st.sampled_from(["a", "b"])
    ),
)
def test_a_waiver_matches_exactly_as_a_recorded_scan_matches_an_exception(
    selector: tuple[str | None, ...], target: tuple[str, str, str | None, str]
) -> None:
    from okeguard.audit.lifecycle import matches
    from okeguard.audit.models import ExceptionRule

    cluster, kind, namespace, name = selector
    rule = ExceptionRule(
        check_id=ROOT,
        cluster=cluster,
        resource_kind=kind,
        resource_namespace=namespace,
        resource_name=name,
    )
    waiver = Waiver(ROOT, "r", None, cluster, kind, namespace, name)
    finding = _finding(ROOT, *target)
    assert waiver.matches(finding) == matches(rule, finding)
    assert not waiver.matches(replace(finding, check_id="k8s.privileged"))


def test_star_and_empty_parts_select_anything() -> None:
    finding = _finding(ROOT, "c", "Deployment", "shop", "web")
    assert Waiver(ROOT, "r", None, cluster="*", namespace="", name="web").matches(finding)
    assert not Waiver(ROOT, "r", None, cluster="other", name="web").matches(finding)


def test_matched_open_findings_become_exempt_naming_the_waiver() -> None:
    annotated = deployment(
        "db", annotations={"okeguard.io/exempt": ROOT, "okeguard.io/exempt-reason": "vendor"}
    )
    report = _report(deployment("web"), deployment("api"), annotated)
    waivers = [
        Waiver(
            ROOT,
            "legacy image",
            NOW + timedelta(days=1),
            namespace="shop",
            name="web",
            origin=".okeguard-ignore.yaml:2",
        ),
        Waiver(ROOT, "second match", NOW + timedelta(days=1), name="web", origin="exception 4"),
        Waiver(ROOT, "annotation wins", NOW + timedelta(days=1), name="db", origin="exception 5"),
    ]
    waived = apply_waivers(report, waivers, NOW)
    by_name = {f.resource.name: f for f in waived.findings if f.check_id == ROOT}
    assert by_name["web"].status is Status.EXEMPT
    assert by_name["web"].exempt_reason == ".okeguard-ignore.yaml:2: legacy image"
    assert by_name["api"].status is Status.OPEN
    assert by_name["db"].exempt_reason == "vendor"  # already exempt by its annotation: kept
    others = [f for f in waived.findings if f.check_id != ROOT]
    assert others == [f for f in report.findings if f.check_id != ROOT]
    # --fail-on and the summary count open findings only
    assert by_name["web"] not in waived.open_findings
    assert waived.count_by_severity()[Severity.HIGH.value] < report.count_by_severity()["high"]
    assert waived.count_by_status()["exempt"] == report.count_by_status()["exempt"] + 1
    assert apply_waivers(report, [], NOW) is report


def test_unknown_findings_are_never_waived() -> None:
    report = _report(deployment("web"))
    unknown = replace(report.findings[0], status=Status.UNKNOWN)
    report = replace(report, findings=[unknown])
    everything = Waiver(unknown.check_id, "r", None, name=unknown.resource.name)
    assert apply_waivers(report, [everything], NOW).findings == [unknown]


def test_a_fleet_report_has_its_parts_waived_alike() -> None:
    fleet = merge_reports(
        [_report(deployment("web"), cluster="a"), _report(deployment("web"), cluster="b")]
    )
    waived = apply_waivers(fleet, [Waiver(ROOT, "r", None, cluster="a", name="web")], NOW)
    exempt = {f.cluster for f in waived.findings if f.status is Status.EXEMPT}
    assert exempt == {"a"}
    assert [{f.cluster for f in p.findings if f.status is Status.EXEMPT} for p in waived.parts] == [
        {"a"},
        set(),
    ]


# ---------------------------------------------------------------- --severity


def test_severities_parse_from_lists_and_refuse_unknown_names() -> None:
    assert parse_severities(["critical,HIGH", " low "]) == {
        Severity.CRITICAL,
        Severity.HIGH,
        Severity.LOW,
    }
    with pytest.raises(UsageError, match="--severity: unknown severity 'hgh'"):
        parse_severities(["critical,hgh"])
    with pytest.raises(UsageError, match="at least one"):
        parse_severities([","])


def test_filter_keeps_only_the_severities_asked_for() -> None:
    report = _report(deployment("web"))
    severities = {f.severity for f in report.findings}
    assert len(severities) > 1
    kept = filter_severity(report, {Severity.HIGH})
    assert kept.findings and all(f.severity is Severity.HIGH for f in kept.findings)
    assert kept.findings == [f for f in report.findings if f.severity is Severity.HIGH]
    assert set(kept.count_by_severity().values()) - {0} == {len(kept.open_findings)}
    assert kept.checks_run == report.checks_run


# ---------------------------------------------------------------- the annotation warning


def test_an_unknown_check_id_in_the_exempt_annotation_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    typo = {"okeguard.io/exempt": "k8s.run-as-rot, *", "okeguard.io/exempt-reason": "x"}
    docs = [
        deployment("web", annotations=typo),
        deployment("api", annotations=typo),
        deployment("db", annotations={"okeguard.io/exempt": "k8s.run-as-root,nonsense-id"}),
        deployment("ok", annotations={"okeguard.io/exempt": "k8s.privileged"}),
    ]
    with caplog.at_level(logging.WARNING, logger="okeguard.checks.engine"):
        run = run_checks(inventory(docs), Config(), now=NOW)
    assert run.warnings == [
        "Deployment shop/web (<test>:1) and 1 more object(s): okeguard.io/exempt names unknown "
        "check id 'k8s.run-as-rot', which exempts nothing (did you mean 'k8s.run-as-root'?)",
        "Deployment shop/db (<test>:3): okeguard.io/exempt names unknown check id "
        "'nonsense-id', which exempts nothing (run 'okeguard checks' for the list)",
    ]
    assert [r.getMessage() for r in caplog.records] == run.warnings


def test_the_annotation_warning_covers_pod_templates_and_the_namespace_filter() -> None:
    web = deployment("web")
    web["spec"]["template"]["metadata"]["annotations"] = {"okeguard.io/exempt": "k8s.privilegd"}
    other = deployment("api", namespace="other", annotations={"okeguard.io/exempt": "k8s.nope"})
    run = run_checks(inventory([web, other]), Config(), now=NOW)
    assert len(run.warnings) == 2
    assert any("did you mean 'k8s.privileged'?" in warning for warning in run.warnings)
    only_shop = run_checks(inventory([web, other]), Config(), now=NOW, namespaces={"shop"})
    assert len(only_shop.warnings) == 1 and "k8s.privilegd" in only_shop.warnings[0]
    assert run_checks(inventory([deployment("x")]), Config(), now=NOW).warnings == []
