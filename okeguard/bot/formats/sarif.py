"""``--format sarif``: SARIF 2.1.0 for GitHub code scanning and other SARIF consumers.

One rule per check that ran; one result per finding. Exempt findings carry a suppression;
findings the scan could not evaluate are notes. Manifest findings point at file and line: a file
inside the source root (the git work tree holding the working directory, else the working
directory) by a URI relative to ``%SRCROOT%``, which ``originalUriBaseIds`` defines as the
root's absolute ``file:`` URI, as GitHub code scanning and other consumers expect; a file
outside it by its absolute ``file:`` URI.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from okeguard import __version__
from okeguard.checks.model import Finding, Severity, Status
from okeguard.checks.registry import CheckSpec, get_check
from okeguard.scanning import ScanReport

SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
INFORMATION_URI = "https://github.com/okeguard/okeguard"
LEVELS = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub maps security-severity to critical (>= 9), high (7-8.9), medium (4-6.9), low (< 4).
SRCROOT = "%SRCROOT%"
# "path:line" or "path:line (items[2])": the path is everything before the last ":<digits>"
_ORIGIN = re.compile(r"^(?P<path>.+):(?P<line>\d+)(?: \(.*\))?$")
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "1.0",
}


def _rule(spec: CheckSpec) -> dict[str, Any]:
    practice = ", ".join(spec.practice)
    return {
        "id": spec.id,
        "name": spec.title.replace(" ", ""),
        "shortDescription": {"text": spec.title},
        "fullDescription": {"text": spec.description},
        "help": {
            "text": f"{spec.description}\nPractice: {practice}. Remediation: {spec.remediation}.",
            "markdown": f"{spec.description}\n\n**Practice:** {practice} · **Remediation:** `{spec.remediation}`",
        },
        "defaultConfiguration": {"level": LEVELS[spec.severity]},
        "properties": {
            "security-severity": SECURITY_SEVERITY[spec.severity],
            "tags": ["security", "kubernetes", "oke", *spec.practice],
            "precision": "high",
        },
    }


def source_root(cwd: str | Path | None = None) -> Path:
    """The root that manifest URIs are relative to: the git work tree holding ``cwd`` (the
    working directory), else ``cwd`` itself."""
    start = Path(cwd if cwd is not None else os.getcwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def _root_uri(root: Path) -> str:
    uri = root.as_uri()
    return uri if uri.endswith("/") else uri + "/"  # a base URI ends with a slash


class _Artifacts:
    """``artifactLocation`` of each manifest path (worked out once per file): relative to
    ``%SRCROOT%`` inside the source root, else an absolute ``file:`` URI. Symbolic links are
    resolved on both sides, so /tmp and /private/tmp name the same file."""

    def __init__(self, root: Path, cwd: Path) -> None:
        self.root, self.cwd = root, cwd
        self.known: dict[str, dict[str, Any]] = {}

    def __call__(self, path: str) -> dict[str, Any]:
        found = self.known.get(path)
        if found is None:
            absolute = Path(os.path.realpath(self.cwd / path))
            try:
                relative = absolute.relative_to(self.root)
            except ValueError:
                found = {"uri": absolute.as_uri()}
            else:
                found = {"uri": quote(relative.as_posix()), "uriBaseId": SRCROOT}
            self.known[path] = found
        return dict(found)


def _location(finding: Finding, artifacts: _Artifacts) -> dict[str, Any]:
    r = finding.resource
    qualified = "/".join(
        part for part in (finding.cluster, r.kind, r.namespace, r.name, r.container) if part
    )
    location: dict[str, Any] = {
        "logicalLocations": [{"name": r.name, "kind": "resource", "fullyQualifiedName": qualified}]
    }
    origin = _ORIGIN.match(finding.origin or "")
    if origin and not origin["path"].startswith("<"):  # <stdin> is not a file
        location["physicalLocation"] = {
            "artifactLocation": artifacts(origin["path"]),
            "region": {"startLine": int(origin["line"])},
        }
    return location


def _result(finding: Finding, rule_index: int, artifacts: _Artifacts) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.check_id,
        "ruleIndex": rule_index,
        "level": "note" if finding.status is Status.UNKNOWN else LEVELS[finding.severity],
        "message": {"text": finding.message},
        "locations": [_location(finding, artifacts)],
        "partialFingerprints": {"okeguardFingerprint/v1": finding.fingerprint},
        "properties": {
            "severity": finding.severity.value,
            "status": finding.status.value,
            "cluster": finding.cluster,
            "resource": finding.resource.to_dict(),
            "remediation": finding.remediation,
        },
    }
    if finding.status is Status.EXEMPT:
        result["suppressions"] = [
            {"kind": "inSource", "justification": finding.exempt_reason or ""}
        ]
    return result


def sarif_document(report: ScanReport, cwd: str | Path | None = None) -> dict[str, Any]:
    """The SARIF log of ``report``; relative manifest paths are taken from ``cwd`` (default:
    the working directory) and made relative to its :func:`source_root`."""
    here = Path(cwd if cwd is not None else os.getcwd()).resolve()
    root = source_root(here)
    rule_ids = sorted(set(report.checks_run) | {f.check_id for f in report.findings})
    specs = [spec for spec in (get_check(i) for i in rule_ids) if spec is not None]
    index = {spec.id: i for i, spec in enumerate(specs)}
    artifacts = _Artifacts(root, here)
    results = [_result(f, index[f.check_id], artifacts) for f in report.findings]
    relative = any(
        loc.get("physicalLocation", {}).get("artifactLocation", {}).get("uriBaseId") == SRCROOT
        for result in results
        for loc in result["locations"]
    )
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "okeguard",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": [_rule(spec) for spec in specs],
                    }
                },
                "originalUriBaseIds": {SRCROOT: {"uri": _root_uri(root)}} if relative else {},
                "results": results,
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "toolExecutionNotifications": [
                            {
                                "level": "warning",
                                "message": {"text": f"incomplete: {gap['kind']}: {gap['reason']}"},
                            }
                            for gap in report.incomplete
                        ],
                    }
                ],
                "properties": {"cluster": report.cluster, "source": report.source},
            }
        ],
    }


def render(report: ScanReport, *, cwd: str | Path | None = None, **_: object) -> bytes:
    """UTF-8 JSON bytes: written as they are, never decoded into a second copy."""
    return orjson.dumps(sarif_document(report, cwd), option=orjson.OPT_INDENT_2) + b"\n"
