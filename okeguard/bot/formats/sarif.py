"""``--format sarif``: SARIF 2.1.0 for GitHub code scanning and other SARIF consumers.

One rule per check that ran; one result per finding. Exempt findings carry a suppression;
findings the scan could not evaluate are notes. Manifest findings point at file and line.
"""

from __future__ import annotations

from typing import Any

import orjson

from okeguard import __version__
from okeguard.checks.model import Finding, Severity, Status
from okeguard.checks.registry import CheckSpec, get_check
from okeguard.service import ScanReport

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


def _location(finding: Finding) -> dict[str, Any]:
    r = finding.resource
    qualified = "/".join(
        part for part in (finding.cluster, r.kind, r.namespace, r.name, r.container) if part
    )
    location: dict[str, Any] = {
        "logicalLocations": [{"name": r.name, "kind": "resource", "fullyQualifiedName": qualified}]
    }
    if finding.origin and not finding.origin.startswith("<"):
        path, _, rest = finding.origin.partition(":")
        line = rest.split(" ", 1)[0]
        physical: dict[str, Any] = {"artifactLocation": {"uri": path}}
        if line.isdigit():
            physical["region"] = {"startLine": int(line)}
        if not path.startswith("/"):
            physical["artifactLocation"]["uriBaseId"] = "%SRCROOT%"
        location["physicalLocation"] = physical
    return location


def _result(finding: Finding, rule_index: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.check_id,
        "ruleIndex": rule_index,
        "level": "note" if finding.status is Status.UNKNOWN else LEVELS[finding.severity],
        "message": {"text": finding.message},
        "locations": [_location(finding)],
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


def sarif_document(report: ScanReport) -> dict[str, Any]:
    rule_ids = sorted(set(report.checks_run) | {f.check_id for f in report.findings})
    specs = [spec for spec in (get_check(i) for i in rule_ids) if spec is not None]
    index = {spec.id: i for i, spec in enumerate(specs)}
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
                "originalUriBaseIds": {"%SRCROOT%": {"uri": "./"}}
                if report.source.get("type") == "manifests"
                else {},
                "results": [_result(f, index[f.check_id]) for f in report.findings],
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


def render(report: ScanReport, **_: object) -> bytes:
    """UTF-8 JSON bytes: written as they are, never decoded into a second copy."""
    return orjson.dumps(sarif_document(report), option=orjson.OPT_INDENT_2) + b"\n"
