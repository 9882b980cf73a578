"""Readable output: tables fit the terminal and lead with the short fingerprint, SARIF points at
files relative to %SRCROOT%, Markdown names the clusters, progress shows only on a terminal."""

from __future__ import annotations

import io
import json
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlparse

import jsonschema
import pytest
import yaml

from okeguard.bot.cli_findings import findings_table
from okeguard.bot.formats import renderer
from okeguard.bot.formats.sarif import SRCROOT, sarif_document, source_root
from okeguard.bot.formats.terminal import (
    ELLIPSIS,
    ellipsize,
    short_id,
    terminal_width,
    use_color,
    wrap,
)
from okeguard.bot.progress import scan_progress
from okeguard.config import ClusterConfig, Config
from okeguard.fleet import unreachable_report
from okeguard.scanning import ScanReport, merge_reports
from okeguard.service import ScanRequest, run_scan
from tests.helpers import NOW, deployment
from tests.unit.test_formats import sarif_schema

LONG_NAME = "payments-gateway-" + "x" * 100  # longer than any terminal line
LONG_MESSAGE_WORDS = 30


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ScanReport:
    folder = tmp_path_factory.mktemp("fit")
    docs = [deployment(LONG_NAME), deployment("web")]
    (folder / "app.yaml").write_text(yaml.safe_dump_all(docs))
    return run_scan(ScanRequest(manifests=(str(folder),), now=NOW, cluster_name="shop-prod"))


def _fleet_report(report: ScanReport) -> ScanReport:
    """The report plus a second, healthy cluster and a third that could not be reached."""
    other = replace(
        report,
        cluster="shop-stage",
        findings=[replace(f, cluster="shop-stage") for f in report.findings],
    )
    dead = unreachable_report(
        Config(),
        ClusterConfig(name="shop-dr", context="dr"),
        "context 'dr': cannot reach the API server at https://10.0.0.9:6443: connection refused",
        (),
        NOW,
        time.perf_counter(),
    )
    return merge_reports([report, other, dead])


# -- width ----------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_the_table_fits_the_width_in_columns(
    report: ScanReport, columns: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    for text in (renderer("table")(report), renderer("table")(_fleet_report(report))):
        assert isinstance(text, str)
        too_long = [line for line in text.splitlines() if len(line) > columns]
        assert not too_long, too_long


@pytest.mark.parametrize("columns", [60, 80])
def test_long_resource_names_end_in_an_ellipsis_and_messages_wrap_at_words(
    report: ScanReport, columns: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    text = str(renderer("table")(report))
    heads = {f"  {short_id(f.fingerprint)}  " for f in report.findings}
    resource_lines = [line for line in text.splitlines() if line[:16] in heads]
    long_lines = [line for line in resource_lines if "shop/payments-g" in line]
    assert long_lines and all(line.endswith(ELLIPSIS) for line in long_lines)
    assert LONG_NAME not in text
    # the origin that no longer fits beside the resource is on the line below, not lost
    assert "      at " in text and "app.yaml:1" in text
    # a message wraps between words (only a word longer than a line is broken): joined again,
    # the messages whose words all fit are intact
    words = " ".join(text.split())
    whole = [
        f
        for f in report.open_findings
        if f.resource.name == "web" and max(map(len, f.message.split())) < columns - 6
    ]
    assert whole
    for finding in whole:
        assert " ".join(finding.message.split()) in words


def test_a_wide_terminal_keeps_names_and_messages_whole(
    report: ScanReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    text = str(renderer("table")(report))
    assert ELLIPSIS not in text
    for finding in report.open_findings:
        if finding.resource.name == "web" and len(finding.message) < 190:
            assert f"      {finding.message}" in text.splitlines()


def test_piped_output_is_not_wrapped(report: ScanReport, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr("sys.stdout", io.StringIO())  # not a terminal
    assert terminal_width() is None
    text = str(renderer("table")(report))
    assert LONG_NAME in text and ELLIPSIS not in text
    assert str(renderer("table")(report, width=0)) == text  # 0: a file, never fitted


def test_width_helpers() -> None:
    assert terminal_width(10) == 50  # narrower than 50 columns helps nobody
    assert terminal_width(120) == 120
    assert ellipsize("abcdef", 4) == "abc" + ELLIPSIS and ellipsize("abc", 4) == "abc"
    assert wrap("alpha beta gamma delta", 13, "  ") == "  alpha beta\n  gamma delta"
    assert wrap("short", None, "  ") == "  short"


# -- short fingerprints -----------------------------------------------------------------------


def test_every_finding_line_leads_with_the_short_fingerprint(
    report: ScanReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    lines = str(renderer("table")(report)).splitlines()
    for finding in report.findings:
        head = f"  {short_id(finding.fingerprint)}  {finding.check_id}  "
        assert any(line.startswith(head) for line in lines), head
    assert len(short_id(report.findings[0].fingerprint)) == 12


def test_findings_list_has_an_id_column_and_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    row: dict[str, Any] = {
        "fingerprint": "0123456789abcdef" * 2,
        "status": "open",
        "severity": "high",
        "check_id": "k8s.run-as-root",
        "cluster": "shop-prod",
        "resource_kind": "Deployment",
        "resource_namespace": "shop",
        "resource_name": LONG_NAME,
        "resource_container": "app",
    }
    rows: list[Any] = [SimpleNamespace(**row)]
    text = findings_table(rows, width=80)
    header, line, total = text.splitlines()
    assert header.startswith("STATUS") and " ID " in header
    assert "0123456789ab " in line and "0123456789abc" not in line
    assert len(line) <= 80 and line.endswith(ELLIPSIS)
    assert total == "1 finding"
    wide = findings_table(rows, width=400).splitlines()[1]
    assert wide.endswith(f"{LONG_NAME} [app]")


# -- fleet reports -----------------------------------------------------------------------------


def test_a_fleet_table_has_a_line_per_cluster_and_sums_up_the_dead_one(
    report: ScanReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    fleet = _fleet_report(report)
    text = str(renderer("table")(fleet))
    lines = text.splitlines()
    by_cluster = {line.split()[0]: line for line in lines if line.startswith("  shop-")}
    assert "complete" in by_cluster["shop-prod"] and "complete" in by_cluster["shop-stage"]
    assert "INCOMPLETE" in by_cluster["shop-dr"] and "connection refused" in by_cluster["shop-dr"]
    assert "Cluster shop-dr" not in text  # its unknown findings are summed up in its line
    assert lines[-1].endswith("1 of 3 clusters unreachable · INCOMPLETE")


# -- SARIF ------------------------------------------------------------------------------------


def _git_tree(tmp_path: Path) -> tuple[Path, Path]:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "deploy" / "prod env").mkdir(parents=True)
    (repo / "ci").mkdir()
    (repo / "deploy" / "prod env" / "app.yaml").write_text(yaml.safe_dump(deployment("web")))
    return repo, repo / "ci"


def test_sarif_uris_are_relative_to_srcroot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, cwd = _git_tree(tmp_path)
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text(yaml.safe_dump(deployment("other")))
    monkeypatch.chdir(cwd)  # run from a subdirectory, with a relative and an absolute path
    report = run_scan(ScanRequest(manifests=("../deploy", str(outside)), now=NOW))
    doc = json.loads(renderer("sarif")(report))
    jsonschema.Draft4Validator(sarif_schema()).validate(doc)
    run = doc["runs"][0]
    base = run["originalUriBaseIds"][SRCROOT]["uri"]
    assert base == repo.resolve().as_uri() + "/"
    artifacts = {
        json.dumps(loc["physicalLocation"]["artifactLocation"], sort_keys=True)
        for result in run["results"]
        for loc in result["locations"]
        if "physicalLocation" in loc  # a namespace's finding has no document
    }
    located = [json.loads(a) for a in artifacts]
    inside = [a for a in located if a.get("uriBaseId") == SRCROOT]
    assert [a["uri"] for a in inside] == ["deploy/prod%20env/app.yaml"]
    # the relative URI resolved against %SRCROOT% is the file that was scanned
    resolved = Path(unquote(urlparse(base + inside[0]["uri"]).path))
    assert resolved.is_file() and resolved.samefile(repo / "deploy" / "prod env" / "app.yaml")
    others = [a for a in located if "uriBaseId" not in a]
    assert [a["uri"] for a in others] == [outside.resolve().as_uri()]
    assert all(not a["uri"].startswith("/") for a in located)


def test_sarif_source_root_is_the_working_directory_outside_git(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "sub").mkdir()
    assert source_root(plain / "sub") == (plain / "sub").resolve()  # no .git above it


def test_sarif_without_files_defines_no_base(report: ScanReport, tmp_path: Path) -> None:
    stdin = run_scan(ScanRequest(manifests=("-",), stdin_text=yaml.safe_dump(deployment())))
    doc = sarif_document(stdin, cwd=tmp_path)
    jsonschema.Draft4Validator(sarif_schema()).validate(doc)
    assert doc["runs"][0]["originalUriBaseIds"] == {}
    assert all("physicalLocation" not in r["locations"][0] for r in doc["runs"][0]["results"])


# -- Markdown ---------------------------------------------------------------------------------


def test_markdown_names_the_cluster(report: ScanReport) -> None:
    text = str(renderer("markdown")(report))
    assert text.splitlines()[0].endswith("in `shop-prod`")


def test_markdown_of_a_fleet_has_a_cluster_table_and_column(report: ScanReport) -> None:
    text = str(renderer("markdown")(_fleet_report(report)))
    assert text.splitlines()[0].endswith("in `shop-prod`, `shop-stage`, `shop-dr`")
    assert "| `shop-prod` |" in text and "| complete |" in text
    dead = next(line for line in text.splitlines() if line.startswith("| `shop-dr` |"))
    assert "incomplete" in dead and "connection refused" in dead
    assert "| Cluster | Check | Resource | Finding |" in text
    assert "Cluster shop-dr" not in text  # not one "not evaluated" row per check


# -- colour and progress ----------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_needs_a_terminal_and_no_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert use_color(stream=_Terminal())
    assert not use_color(stream=io.StringIO())
    assert not use_color(no_color=True, stream=_Terminal())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(stream=_Terminal())
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert not use_color(stream=_Terminal())


def test_progress_shows_after_the_delay_on_a_terminal_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TERM", "xterm")
    terminal = _Terminal()
    with scan_progress("Scanning…", delay=0.05, stream=terminal) as progress:
        progress.cluster_done(_dummy_report(), 3)
        time.sleep(0.6)
    assert progress.shown
    assert "Scanning… 1/3 clusters" in terminal.getvalue()

    quick = _Terminal()
    with scan_progress("Scanning…", delay=2.0, stream=quick) as progress:
        pass
    assert not progress.shown and quick.getvalue() == ""

    for stream, quiet in ((io.StringIO(), False), (_Terminal(), True)):
        with scan_progress("Scanning…", delay=0.0, stream=stream, quiet=quiet) as progress:
            time.sleep(0.2)
        assert not progress.shown and stream.getvalue() == ""


def _dummy_report() -> ScanReport:
    return ScanReport(
        generated_at=datetime.now(),
        evaluated_at=datetime.now(),
        cluster="c",
        source={"type": "live"},
        findings=[],
        checks_run=[],
        not_applicable=[],
        gaps=[],
        skipped_kinds={},
        objects_scanned=0,
        duration_seconds=0.0,
    )


def test_a_long_origin_gives_up_its_start_never_its_file_and_line() -> None:
    from okeguard.bot.formats.terminal import ellipsize_left

    path = "/very/long/checkout/" + "deep/" * 20 + "deploy/app.yaml:12"
    cut = ellipsize_left(path, 40)
    assert len(cut) == 40 and cut.startswith(ELLIPSIS) and cut.endswith("deploy/app.yaml:12")
    assert ellipsize_left("app.yaml:1", 40) == "app.yaml:1"
