"""No secret value leaves okeguard: every kind of credential is planted with a random value, in
manifests and in the fake Kubernetes API, and every output is searched for it.

The outputs: the snapshot file, JSON, SARIF, markdown and table reports, the log at debug level
(as printed, and the raw records before the log filter), the findings recorded in SQLite and
PostgreSQL, and the Slack messages built from the scan. The checks must still see that the
credentials are there.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from sqlalchemy import MetaData, select

from okeguard.audit.db import make_engine
from okeguard.bot.cli import cli
from okeguard.bot.slack.blocks_scan import findings_list, scan_summary
from okeguard.scanning import ScanReport
from okeguard.service import ScanRequest, run_scan
from tests.fakes.kube_api import FakeKubeApi

PLANTED: list[str] = []


def plant(alphabet: str = "0123456789abcdef", length: int = 20) -> str:
    """A random value, remembered so that every output can be searched for it."""
    value = "".join(secrets.choice(alphabet) for _ in range(length))
    PLANTED.append(value)
    return value


def plant_encoded(value: str) -> str:
    encoded = base64.b64encode(value.encode()).decode()
    PLANTED.append(encoded)
    return encoded


UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
SECRET_DATA = plant()
SECRET_STRING_DATA = plant()
LAST_APPLIED_SECRET = plant()
KAPP_ORIGINAL = plant()
YAML_COPY = plant()
BROKEN_JSON = plant()
PROPERTIES_PASSWORD = plant()
SPRING_PASSWORD = plant()
DOTENV_API_KEY = plant()
CONFIGMAP_KEY = plant()
PEM_BODY = plant()
ENV_PASSWORD = plant()
AWS_KEY_ID = "AKIA" + plant(UPPER, 16)
URL_PASSWORD_A, URL_PASSWORD_B = plant(), plant()  # joined by '@' and ':' in one password
URL_PASSWORD = f"{URL_PASSWORD_A}@x:{URL_PASSWORD_B}"
ANNOTATION_URL_PASSWORD = plant()
LAST_APPLIED_ENV = plant()
ARG_PASSWORD = plant()
ARG_TOKEN = plant()
ARG_SHORT = plant()
COMMAND_SECRET = plant()
SHELL_PASSWORD = plant()
PROBE_BEARER = plant()
PROBE_API_KEY = plant()
HOOK_COOKIE = plant()
ENCODED_SECRET = plant_encoded(SECRET_DATA)

PEM = f"-----BEGIN RSA PRIVATE KEY-----\nMIIE{PEM_BODY}\n-----END RSA PRIVATE KEY-----\n"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _secret() -> dict[str, Any]:
    copy = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop"},
        "stringData": {"password": LAST_APPLIED_SECRET},
    }
    kapp = {**copy, "stringData": {"password": KAPP_ORIGINAL}}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": "db",
            "namespace": "shop",
            "annotations": {
                LAST_APPLIED: json.dumps(copy),
                "kapp.k14s.io/original": json.dumps(kapp),
            },
        },
        "data": {"password": ENCODED_SECRET},
        "stringData": {"extra": SECRET_STRING_DATA},
    }


def _config_map() -> dict[str, Any]:
    properties = (
        "db.url=jdbc:postgresql://db:5432/shop\n"
        f"db.password={PROPERTIES_PASSWORD}\n"
        f"spring.datasource.password: {SPRING_PASSWORD}\n"
    )
    yaml_copy = f"apiVersion: v1\nkind: Secret\nstringData:\n  token: {YAML_COPY}\n"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "app-config",
            "namespace": "shop",
            "annotations": {
                "example.com/copy": yaml_copy,
                "example.com/broken": f'{{"kind": "Secret", "data": {{"pw": "{BROKEN_JSON}"',
            },
        },
        "data": {
            "application.properties": properties,
            ".env": f"export API_KEY={DOTENV_API_KEY}\nLOG_LEVEL=info\n",
            "DB_PASSWORD": CONFIGMAP_KEY,
            "signing.pem": PEM,
        },
    }


def _deployment() -> dict[str, Any]:
    probe = {
        "httpGet": {
            "path": "/healthz",
            "port": 8080,
            "httpHeaders": [
                {"name": "Authorization", "value": f"Bearer {PROBE_BEARER}"},
                {"name": "X-Api-Key", "value": PROBE_API_KEY},
            ],
        }
    }
    container = {
        "name": "api",
        "image": "registry.example.com/shop/api:1.4.2",
        "command": ["/bin/api", f"--secret={COMMAND_SECRET}"],
        "args": ["--password", ARG_PASSWORD, f"--token {ARG_TOKEN}", f"-p={ARG_SHORT}"],
        "env": [
            {"name": "DB_PASSWORD", "value": ENV_PASSWORD},
            {"name": "UPLOAD_KEY_ID", "value": AWS_KEY_ID},
            {"name": "DATABASE_URL", "value": f"postgres://shop:{URL_PASSWORD}@db:5432/shop"},
            {"name": "LOG_LEVEL", "value": "info"},
        ],
        "livenessProbe": probe,
        "readinessProbe": probe,
        "lifecycle": {
            "preStop": {
                "httpGet": {
                    "path": "/drain",
                    "port": 8080,
                    "httpHeaders": [{"name": "Cookie", "value": f"session={HOOK_COOKIE}"}],
                }
            }
        },
    }
    init = {
        "name": "migrate",
        "image": "registry.example.com/shop/migrate:1.4.2",
        "command": ["sh", "-c", f"migrate --db-password '{SHELL_PASSWORD}' up"],
    }
    template_spec = {"containers": [container], "initContainers": [init]}
    applied = {"spec": {"template": {"spec": {"containers": [{"env": [LAST_APPLIED_ENV]}]}}}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "api",
            "namespace": "shop",
            "annotations": {
                LAST_APPLIED: json.dumps(applied),
                "example.com/upstream": f"https://svc:{ANNOTATION_URL_PASSWORD}@api.example.com",
            },
        },
        "spec": {
            "selector": {"matchLabels": {"app": "api"}},
            "template": {"metadata": {"labels": {"app": "api"}}, "spec": template_spec},
        },
    }


def planted_objects() -> list[dict[str, Any]]:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    return [namespace, _secret(), _config_map(), _deployment()]


def test_every_planted_value_is_in_the_input() -> None:
    """The search below would pass trivially if nothing were planted."""
    text = json.dumps(planted_objects())
    missing = [
        value
        for value in PLANTED
        if value not in text and base64.b64encode(value.encode()).decode() not in text
    ]
    assert missing == [] and len(PLANTED) >= 25


# ---------------------------------------------------------------- what is searched


def leaks(blob: str | bytes) -> list[str]:
    """The planted values found in ``blob``."""
    text = blob.decode(errors="replace") if isinstance(blob, bytes) else blob
    return [value for value in PLANTED if value in text]


class RawRecords(logging.Handler):
    """Every record of okeguard and the clients, as logged: before the redacting filter."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(f"{record.getMessage()} {record.__dict__!r}")


@pytest.fixture
def raw_records() -> Iterator[RawRecords]:
    handler = RawRecords()
    loggers = [logging.getLogger(name) for name in ("okeguard", "kubernetes", "urllib3")]
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        root.handlers[:] = saved[0]  # the CLI pointed the root logger at its captured stderr
        root.setLevel(saved[1])


def okeguard(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run the command line in this process at debug level; stdout and stderr are kept apart."""
    result = CliRunner().invoke(cli, ["-vv", *args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def database_dump(url: str) -> str:
    """Every row of every table, as text."""
    engine = make_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            rows = [
                repr(row)
                for table in metadata.sorted_tables
                for row in connection.execute(select(table))
            ]
    finally:
        engine.dispose()
    assert rows, "nothing was recorded"
    return "\n".join(rows)


def slack_messages(report: ScanReport) -> str:
    summary = scan_summary(
        report,
        new=report.findings,
        changed=[],
        unchanged_count=0,
        score=50,
        score_change=None,
        cluster_label=report.cluster,
    )
    listing = findings_list(report.findings, title="Open findings")
    return json.dumps([summary.payload(), listing.payload()])


def reports(source: list[str], env: dict[str, str]) -> dict[str, str]:
    """JSON (recorded in the database), SARIF, markdown and table reports of one source, and
    the text each command printed on stderr."""
    out: dict[str, str] = {}
    for output_format in ("json", "sarif", "markdown", "table"):
        record = ["--record"] if output_format == "json" else []
        result = okeguard("scan", *source, "--format", output_format, *record, env=env)
        out[output_format] = result.stdout
        out[f"{output_format} stderr"] = result.stderr
    return out


def assert_credentials_still_found(json_report: str) -> None:
    findings = json.loads(json_report)["findings"]
    seen = {(f["check_id"], f["resource"]["kind"], f["resource"]["name"]) for f in findings}
    assert ("k8s.credentials-in-env", "Deployment", "api") in seen
    assert ("k8s.credentials-in-configmap", "ConfigMap", "app-config") in seen
    message = next(f["message"] for f in findings if f["check_id"] == "k8s.credentials-in-env")
    assert "DB_PASSWORD is set with a literal value" in message
    assert "UPLOAD_KEY_ID holds a literal aws-access-key-id" in message


def assert_nothing_leaked(outputs: dict[str, str]) -> None:
    found = {name: leaks(text) for name, text in outputs.items()}
    assert {name: values for name, values in found.items() if values} == {}


# ---------------------------------------------------------------- the tests


def test_manifest_scan_outputs_hold_no_secret(
    tmp_path: Path, database_url: str, raw_records: RawRecords
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "shop.yaml").write_text(yaml.safe_dump_all(planted_objects()))
    env = {"OKEGUARD_DATABASE_URL": database_url}

    outputs = reports(["--manifests", str(manifests)], env)
    report = run_scan(ScanRequest(manifests=(str(manifests),)))
    outputs["slack"] = slack_messages(report)
    outputs["database"] = database_dump(database_url)
    outputs["log records"] = "\n".join(raw_records.texts)

    assert_nothing_leaked(outputs)
    assert_credentials_still_found(outputs["json"])


def test_live_snapshot_and_scan_outputs_hold_no_secret(
    kube_api: FakeKubeApi, tmp_path: Path, database_url: str, raw_records: RawRecords
) -> None:
    kube_api.add(*planted_objects())
    live = ["--context", "fake", "--kubeconfig", str(kube_api.kubeconfig_path)]
    snapshot = tmp_path / "shop.jsonl"
    env = {"OKEGUARD_DATABASE_URL": database_url}

    taken = okeguard("snapshot", *live, "-o", str(snapshot))
    outputs = {"snapshot": snapshot.read_text(), "snapshot stderr": taken.stderr}
    outputs.update({f"live {k}": v for k, v in reports(live, env).items()})
    outputs.update(
        {f"offline {k}": v for k, v in reports(["--snapshot", str(snapshot)], env).items()}
    )
    request = ScanRequest(context="fake", kubeconfig=str(kube_api.kubeconfig_path))
    outputs["slack live"] = slack_messages(run_scan(request))
    outputs["slack offline"] = slack_messages(run_scan(ScanRequest(snapshot=str(snapshot))))
    outputs["database"] = database_dump(database_url)
    outputs["log records"] = "\n".join(raw_records.texts)

    assert_nothing_leaked(outputs)
    assert_credentials_still_found(outputs["live json"])
    assert_credentials_still_found(outputs["offline json"])
    # the collector did read the values: the fake served them
    served = json.dumps(kube_api.get_object("Deployment", "api", "shop"))
    assert ARG_PASSWORD in served and PROBE_BEARER in served


MALFORMED_PIN = "9" + "".join(secrets.choice("0123456789") for _ in range(15))
MALFORMED_NESTED = "".join(secrets.choice("0123456789abcdef") for _ in range(20))


def test_an_object_not_evaluated_is_reported_without_its_values(tmp_path: Path) -> None:
    """A manifest the API server would refuse (a number as an env value, a mapping as a
    ConfigMap value) is reported as not evaluated: the report names the field, not its value."""
    env = [{"name": "DB_PIN", "value": int(MALFORMED_PIN)}]
    workload = _deployment()
    workload["spec"]["template"]["spec"] = {
        "containers": [{"name": "a", "image": "a:1", "env": env}]
    }
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "odd", "namespace": "shop"},
        "data": {"password": {"value": MALFORMED_NESTED}},
    }
    manifests = tmp_path / "odd.yaml"
    manifests.write_text(yaml.safe_dump_all([workload, config_map]))
    result = okeguard("scan", "--manifests", str(manifests), "--format", "json")
    assert "could not evaluate" in result.stdout  # the objects were judged malformed
    for value in (MALFORMED_PIN, MALFORMED_NESTED):
        assert value not in result.stdout and value not in result.stderr
