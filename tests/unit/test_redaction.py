"""Redaction on the way in: no secret value survives loading, whatever the source, and the
checks still see that a credential is there. One test per rule, edge cases included."""

from __future__ import annotations

import base64
import copy
import json
import string

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from okeguard.inventory.manifests import objects_from_documents
from okeguard.inventory.normalize import LAST_APPLIED, to_object
from okeguard.inventory.sensitive import (
    classify_key_material,
    looks_like_credential_name,
    marker,
    marker_label,
    may_hold_credential,
    redact_args,
    redact_header,
    redact_properties,
    redact_text,
    redacted_labels,
)
from tests.helpers import deployment, inventory, scan

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx\n-----END RSA PRIVATE KEY-----\n"


def test_env_values_that_look_like_credentials_are_replaced() -> None:
    containers = [
        {
            "name": "app",
            "image": "nginx:1.27",
            "env": [
                {"name": "DB_PASSWORD", "value": "s3cr3t-value"},
                {"name": "INNOCENT", "value": "AKIAIOSFODNN7EXAMPLE"},
                {"name": "LOG_LEVEL", "value": "debug"},
            ],
        }
    ]
    inv = inventory([deployment(containers=containers)])
    env = inv.workloads[0].containers[0].spec["env"]
    assert marker_label(env[0]["value"]) == "credential"
    assert marker_label(env[1]["value"]) == "aws-access-key-id"
    assert env[2]["value"] == "debug"
    assert "s3cr3t-value" not in json.dumps(inv.workloads[0].obj.raw)


def test_configmap_key_material_is_replaced_but_plain_config_kept() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "a"},
        "data": {"key.pem": PEM, "mode": "prod"},
    }
    (obj,) = inventory([cm]).of_kind("ConfigMap")
    assert marker_label(obj.raw["data"]["key.pem"]) == "pem-private-key"
    assert obj.raw["data"]["mode"] == "prod"


def test_findings_never_carry_secret_values() -> None:
    containers = [
        {
            "name": "app",
            "image": "nginx:1.27",
            "env": [{"name": "API_TOKEN", "value": "tok-123456789"}],
        }
    ]
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "shop"},
        "data": {"k": PEM},
    }
    findings = scan([deployment(containers=containers), cm])
    dumped = json.dumps([f.to_dict() for f in findings])
    assert "tok-123456789" not in dumped and "MIIEowIBAAKCAQEAx" not in dumped
    assert {"k8s.credentials-in-env", "k8s.credentials-in-configmap"} <= {
        f.check_id for f in findings
    }


def test_credential_name_heuristics() -> None:
    for name in (
        "DB_PASSWORD",
        "stripe_api_key",
        "GITHUB_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "PRIVATE_KEY",
        "MYSQL_PWD",
    ):
        assert looks_like_credential_name(name), name
    for name in ("PASSWORD_FILE", "TOKEN_URL", "SECRET_NAME", "LOG_LEVEL", "PORT", "TOKEN_TTL"):
        assert not looks_like_credential_name(name), name


def test_key_formats() -> None:
    assert classify_key_material(PEM) == "pem-private-key"
    assert classify_key_material("-----BEGIN OPENSSH PRIVATE KEY-----\nabc") == "pem-private-key"
    assert (
        classify_key_material("-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----") is None
    )
    oci = "ocid1.tenancy.oc1..aaaabbbb/ocid1.user.oc1..ccccdddd/" + ":".join(["ab"] * 16)
    assert classify_key_material(oci) == "oci-api-key-id"
    assert classify_key_material("hello world, nothing to see") is None


# ---------------------------------------------------------------- rules, one by one

MARK = "okeguard:redacted:credential:"


def m(value: str) -> str:
    """The marker that replaces ``value``."""
    return marker("credential", value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://app:pw123@db:5432/shop", f"postgres://app:{m('pw123')}@db:5432/shop"),
        ("postgres://app:p@ss@db/shop", f"postgres://app:{m('p@ss')}@db/shop"),
        ("postgres://app:p:a:ss@db/shop", f"postgres://app:{m('p:a:ss')}@db/shop"),
        ("postgres://app:pa/ss@db/shop", f"postgres://app:{m('pa/ss')}@db/shop"),
        ("redis://:sesame@cache:6379/0", f"redis://:{m('sesame')}@cache:6379/0"),
        ("jdbc:mysql://u:pw@h/db", f"jdbc:mysql://u:{m('pw')}@h/db"),
        ("postgres://app:pw@db/shop?opt=a@b", f"postgres://app:{m('pw')}@db/shop?opt=a@b"),
        ("https://x/cb?access_token=abc&page=2", f"https://x/cb?access_token={m('abc')}&page=2"),
        (
            "jdbc:sqlserver://h;user=sa;password=pw",
            f"jdbc:sqlserver://h;user=sa;password={m('pw')}",
        ),
        (
            "amqp://a:one@h1,amqp://b:two@h2/v",
            f"amqp://a:{m('one')}@h1,amqp://b:{m('two')}@h2/v",
        ),
        ("see http://u:pw@h/x and more", f"see http://u:{m('pw')}@h/x and more"),
    ],
)
def test_url_passwords_are_replaced_keeping_scheme_user_and_host(url: str, expected: str) -> None:
    assert redact_text(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "postgres://app@db:5432/shop",  # a user but no password
        "postgres://db:5432/shop",
        "http://host:8080/path@v2",  # a port, then an '@' in the path
        "https://registry:443/@scope/pkg",
        "ssh://git@github.com:22/org/repo.git",
        "postgres://app:$(DB_PASSWORD)@db/shop",  # the kubelet expands it from a Secret
        "postgres://app:${DB_PASSWORD}@db/shop",
        "https://example.com/a?page=2&sort=name",
        "not a url: user:pw@host",
    ],
)
def test_urls_without_a_literal_password_are_kept(url: str) -> None:
    assert redact_text(url) == url


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--password=pw1"], [f"--password={m('pw1')}"]),
        (["--token", "tok1", "--port", "80"], ["--token", m("tok1"), "--port", "80"]),
        (["--secret=s1", "-p=pw2"], [f"--secret={m('s1')}", f"-p={m('pw2')}"]),
        (["--api-key", "k1", "--apikey=k2"], ["--api-key", m("k1"), f"--apikey={m('k2')}"]),
        (
            ["--credential=c1", "--private-key", "k3"],
            [f"--credential={m('c1')}", "--private-key", m("k3")],
        ),
        (["--db-passwd='a b'"], [f"--db-passwd='{m('a b')}'"]),
        (["-Ddb.password=pw3", "-Dmode=x"], [f"-Ddb.password={m('pw3')}", "-Dmode=x"]),
        (["serve", "--password"], ["serve", "--password"]),  # the flag last: nothing follows
        (["--password", "--verbose"], ["--password", "--verbose"]),
        (["--password-file", "/run/pw"], ["--password-file", "/run/pw"]),
        (["--token-ttl=1h", "-p", "8080"], ["--token-ttl=1h", "-p", "8080"]),
        (["--password=$(DB_PASSWORD)"], ["--password=$(DB_PASSWORD)"]),
        (
            ["sh", "-c", "mysql -u root --password s3 -h db && run --token=t4"],
            ["sh", "-c", f"mysql -u root --password {m('s3')} -h db && run --token={m('t4')}"],
        ),
        (
            ["create", "secret", "generic", "x", "--from-literal=password=pw5"],
            ["create", "secret", "generic", "x", f"--from-literal=password={m('pw5')}"],
        ),
        ([80, "--token", None], [80, "--token", None]),
    ],
)
def test_credential_flags_in_args(args: list[object], expected: list[object]) -> None:
    assert redact_args(args) == expected


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("Authorization", "Bearer abc.def", f"Bearer {m('abc.def')}"),
        ("authorization", "Basic dXNlcjpwdw==", f"Basic {m('dXNlcjpwdw==')}"),
        ("Proxy-Authorization", "Basic eHg6eXk=", f"Basic {m('eHg6eXk=')}"),
        ("Authorization", "raw-token", m("raw-token")),
        ("X-Api-Key", "k-123", m("k-123")),
        ("Cookie", "session=abc; theme=dark", m("session=abc; theme=dark")),
        ("X-Auth-Token", "t-1", m("t-1")),
        ("X-Request-Source", "probe", "probe"),
        ("Host", "example.com", "example.com"),
    ],
)
def test_probe_header_values(name: str, value: str, expected: str) -> None:
    assert redact_header(name, value) == expected


PROPERTIES = """\
# database
db.url=jdbc:postgresql://db:5432/shop
db.password=pw-props
spring.datasource.password: pw-spring
spring.datasource.username: shop
export API_KEY=key-env
SECRET_TOKEN = "tok-quoted"
password.file=/run/secrets/pw
db.password.placeholder=${DB_PASSWORD}
"""


def test_properties_files_lose_credential_values_only() -> None:
    out = redact_properties(PROPERTIES)
    for planted in ("pw-props", "pw-spring", "key-env", "tok-quoted"):
        assert planted not in out
    assert f"db.password={m('pw-props')}" in out
    assert f"spring.datasource.password: {m('pw-spring')}" in out
    assert f"export API_KEY={m('key-env')}" in out
    assert f'SECRET_TOKEN = "{m("tok-quoted")}"' in out
    for kept in (
        "db.url=jdbc:postgresql://db:5432/shop",
        "spring.datasource.username: shop",
        "password.file=/run/secrets/pw",
        "db.password.placeholder=${DB_PASSWORD}",
        "# database",
    ):
        assert kept in out


def test_yaml_nesting_and_block_scalars() -> None:
    text = "spring:\n  datasource:\n    password: pw-nested\nkey: |\n  fine\nprivate_key: |\n  line-one\n  line-two\nafter: kept\n"
    out = redact_properties(text)
    assert "pw-nested" not in out and "line-one" not in out and "line-two" not in out
    assert "  fine\n" in out and "after: kept" in out and "private_key: |" in out


def test_json_pairs_plain_and_nested_in_a_json_string() -> None:
    assert redact_text('{"db":{"password":"pw-j","user":"u"}}') == (
        f'{{"db":{{"password":"{m("pw-j")}","user":"u"}}}}'
    )
    nested = '{"config": "{\\"apiKey\\":\\"k-n\\"}"}'
    assert "k-n" not in redact_text(nested)


def test_authorization_in_free_text() -> None:
    snippet = 'proxy_set_header Authorization "Bearer tok-nginx";'
    assert redact_text(snippet) == f'proxy_set_header Authorization "Bearer {m("tok-nginx")}";'
    assert "tok-curl" not in redact_text("curl -H 'X-Api-Key: tok-curl' https://api")
    assert redact_text("the Authorization header is required") == (
        "the Authorization header is required"
    )


def test_redacted_labels_find_embedded_markers() -> None:
    value = redact_text("postgres://u:pw@h/db")
    assert marker_label(value) is None  # not a whole-value marker…
    assert redacted_labels(value) == ("credential",)  # …but one is inside
    assert redacted_labels("plain") == () and redacted_labels(None) == ()


# ---------------------------------------------------------------- objects

ANNOTATION = "okeguard:redacted:annotation:"


def _secret_json(value: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db"},
            "stringData": {"pw": value},
        }
    )


def test_annotations_holding_objects_are_replaced_on_every_object() -> None:
    annotations = {
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps({"spec": {"pw": "la-1"}}),
        "kapp.k14s.io/original": _secret_json("kapp-1"),
        "example.com/copy-yaml": "apiVersion: v1\nkind: Secret\nstringData:\n  pw: yaml-1\n",
        "example.com/copy-json": _secret_json("json-1"),
        "example.com/broken-json": '{"apiVersion": "v1", "kind": "Secret", "data": {"pw": "trunc-1"',
        "example.com/broken-other": '{"pw": "trunc-2"',
        "example.com/settings": '{"retries": 3, "password": "set-1"}',
        "example.com/endpoint": "https://svc:pw-ann@api.example.com/v1",
        "prometheus.io/port": "9090",
        "okeguard.io/exempt": "k8s.run-as-root",
    }
    doc = deployment(annotations=annotations)
    doc["spec"]["template"]["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": '{"x": "la-2"}',
        "kapp.k14s.io/original": _secret_json("kapp-2"),
    }
    secret = _secret_doc("s", {"password": "c2VjcmV0"})
    secret["metadata"]["annotations"] = {"kapp.k14s.io/original": _secret_json("kapp-3")}
    inv = inventory([doc, secret])
    dumped = json.dumps([o.raw for objs in inv.objects.values() for o in objs])
    for planted in (
        "la-1",
        "la-2",
        "kapp-1",
        "kapp-2",
        "kapp-3",
        "yaml-1",
        "json-1",
        "trunc-1",
        "trunc-2",
        "set-1",
        "pw-ann",
    ):
        assert planted not in dumped, planted
    (workload,) = inv.workloads
    seen = workload.obj.annotations
    for name in (
        "kubectl.kubernetes.io/last-applied-configuration",
        "kapp.k14s.io/original",
        "example.com/copy-yaml",
        "example.com/copy-json",
        "example.com/broken-json",
        "example.com/broken-other",
    ):
        assert seen[name].startswith(ANNOTATION), name
    assert seen["example.com/settings"] == f'{{"retries": 3, "password": "{m("set-1")}"}}'
    assert seen["prometheus.io/port"] == "9090"
    assert seen["okeguard.io/exempt"] == "k8s.run-as-root"
    pod_annotations = workload.pod_metadata["annotations"]
    assert all(v.startswith(ANNOTATION) for v in pod_annotations.values())


def _secret_doc(name: str, data: dict[str, str], kind_type: str = "Opaque") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": kind_type,
        "metadata": {"name": name, "namespace": "shop"},
        "data": data,
    }


def _container(**fields: object) -> dict:
    return {"name": "app", "image": "nginx:1.27", **fields}


def test_containers_env_args_and_probe_headers() -> None:
    probe = {
        "httpGet": {
            "path": "/health?token=tok-path",
            "port": 8080,
            "httpHeaders": [
                {"name": "Authorization", "value": "Bearer tok-probe"},
                {"name": "X-Api-Key", "value": "key-probe"},
                {"name": "Accept", "value": "application/json"},
            ],
        }
    }
    container = _container(
        command=["/app", "--db-password", "pw-arg"],
        args=["--token=tok-arg", "--port=8080"],
        env=[
            {"name": "DATABASE_URL", "value": "postgres://shop:pw-url@db:5432/shop"},
            {"name": "JAVA_OPTS", "value": "-Xmx1g -Djavax.net.ssl.trustStorePassword=pw-java"},
            {
                "name": "SPRING_APPLICATION_JSON",
                "value": '{"spring.datasource.password":"pw-spring"}',
            },
            {"name": "DB_PASSWORD", "value": "pw-env"},
            {"name": "LOG_LEVEL", "value": "debug"},
        ],
        livenessProbe=probe,
        readinessProbe={"exec": {"command": ["check", "--password", "pw-exec"]}},
        startupProbe=probe,
        lifecycle={
            "preStop": {
                "httpGet": {
                    "path": "/stop",
                    "port": 80,
                    "httpHeaders": [{"name": "Cookie", "value": "sid=ck-hook"}],
                }
            }
        },
    )
    init = _container(name="init", args=["--secret", "sec-init"])
    doc = deployment(containers=[container], pod_spec={"initContainers": [init]})
    inv = inventory([doc])
    (workload,) = inv.workloads
    dumped = json.dumps(workload.obj.raw)
    for planted in (
        "tok-path",
        "tok-probe",
        "key-probe",
        "pw-arg",
        "tok-arg",
        "pw-url",
        "pw-java",
        "pw-spring",
        "pw-env",
        "pw-exec",
        "ck-hook",
        "sec-init",
    ):
        assert planted not in dumped, planted
    spec = workload.containers[0].spec
    env = {v["name"]: v["value"] for v in spec["env"]}
    assert env["DATABASE_URL"] == f"postgres://shop:{m('pw-url')}@db:5432/shop"
    assert env["LOG_LEVEL"] == "debug" and marker_label(env["DB_PASSWORD"]) == "credential"
    assert spec["args"] == [f"--token={m('tok-arg')}", "--port=8080"]
    headers = spec["livenessProbe"]["httpGet"]["httpHeaders"]
    assert headers[0]["value"] == f"Bearer {m('tok-probe')}"
    assert headers[2]["value"] == "application/json"


def test_configmap_values() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "app", "namespace": "shop"},
        "data": {
            "application.properties": PROPERTIES,
            "DB_PASSWORD": "pw-key",
            "TOKEN_AUTH": "true",
            "signing.pem": PEM,
            "mode": "prod",
        },
    }
    (obj,) = inventory([cm]).of_kind("ConfigMap")
    data = obj.raw["data"]
    assert "pw-props" not in data["application.properties"]
    assert data["DB_PASSWORD"] == m("pw-key")
    assert data["TOKEN_AUTH"] == "true"  # a switch, not a credential
    assert marker_label(data["signing.pem"]) == "pem-private-key"
    assert data["mode"] == "prod"


def test_tls_secret_keeps_its_certificate_but_not_a_bundled_key() -> None:
    cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    encoded = base64.b64encode(cert.encode()).decode()
    bundle = base64.b64encode((cert + PEM).encode()).decode()
    inv = inventory(
        [
            _secret_doc("plain", {"tls.crt": encoded, "tls.key": "a2V5"}, "kubernetes.io/tls"),
            _secret_doc("bundle", {"tls.crt": bundle, "ca.crt": encoded}, "kubernetes.io/tls"),
        ]
    )
    plain, bundled = (inv.get("Secret", "shop", n) for n in ("plain", "bundle"))
    assert plain is not None and bundled is not None
    assert plain.raw["data"]["tls.crt"] == encoded
    assert marker_label(plain.raw["data"]["tls.key"]) == "secret"
    assert marker_label(bundled.raw["data"]["tls.crt"]) == "secret"
    assert bundled.raw["data"]["ca.crt"] == encoded


def test_checks_still_see_the_credentials() -> None:
    containers = [
        _container(
            env=[
                {"name": "DB_PASSWORD", "value": "pw-check"},
                {"name": "SIGNING", "value": PEM},
                {"name": "DATABASE_URL", "value": "postgres://u:pw-url2@db/x"},
            ],
            args=["--token=tok-check"],
        )
    ]
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "shop"},
        "data": {"key.pem": PEM, "app.properties": "db.password=pw-cm\n"},
    }
    findings = scan([deployment(containers=containers), cm])
    by_check = {f.check_id: f for f in findings}
    env = by_check["k8s.credentials-in-env"].message
    assert "DB_PASSWORD is set with a literal value" in env
    assert "SIGNING holds a literal pem-private-key" in env
    assert "key.pem holds a pem-private-key" in by_check["k8s.credentials-in-configmap"].message
    dumped = json.dumps([f.to_dict() for f in findings])
    for planted in ("pw-check", "pw-url2", "tok-check", "pw-cm", "MIIEowIBAAKCAQEAx"):
        assert planted not in dumped


def test_loading_a_redacted_object_again_changes_nothing() -> None:
    doc = deployment(
        containers=[
            _container(
                env=[
                    {"name": "URL", "value": "postgres://u:p@ss@h/db"},
                    {"name": "API_KEY", "value": "k"},
                ],
                args=["--password", "x", "--token=y", "sh -c 'run --secret z'"],
                livenessProbe={
                    "httpGet": {
                        "path": "/",
                        "port": 1,
                        "httpHeaders": [{"name": "Authorization", "value": "Bearer t"}],
                    }
                },
            )
        ],
        annotations={LAST_APPLIED: "{}", "a": "https://u:pw@h", "b": "{broken"},
    )
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"p": PROPERTIES, "k": PEM},
    }
    once = [o.raw for o in objects_from_documents(copy.deepcopy([doc, cm]))]
    twice = [o.raw for o in objects_from_documents(copy.deepcopy(once))]
    assert twice == once


# ---------------------------------------------------------------- properties

planted_values = st.text(alphabet=string.ascii_letters + string.digits, min_size=12, max_size=30)
TEMPLATES = (
    "postgres://app:{}@db:5432/shop",
    "postgres://app:x@{}@db/shop",
    "--password={}",
    "run --token {} --verbose",
    "-p={}",
    "db.password={}",
    "  password: '{}'",
    'export API_KEY="{}"',
    '{{"password": "{}"}}',
    "https://h/cb?access_token={}&x=1",
    'proxy_set_header Authorization "Bearer {}";',
    "--from-literal=password={}",
)


@settings(max_examples=200)
@given(planted_values, st.sampled_from(TEMPLATES), st.text(max_size=20), st.text(max_size=20))
def test_a_planted_value_never_survives(value: str, template: str, before: str, after: str) -> None:
    assume(value not in before and value not in after)
    text = f"{before}\n{template.format(value)}\n{after}"
    out = redact_text(text)
    assert value not in out
    assert redact_text(out) == out


@given(st.text(max_size=120))
def test_redaction_is_idempotent(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once
    assert redact_properties(redact_properties(text)) == redact_properties(text)


@given(st.lists(st.text(max_size=30), max_size=6))
def test_args_redaction_is_idempotent_and_keeps_length(args: list[str]) -> None:
    once = redact_args(list(args))
    assert len(once) == len(args)
    assert redact_args(once) == once


def test_values_of_the_wrong_type_are_redacted_too() -> None:
    """The API server refuses them, but a manifest may hold them; redaction does not rely on a
    loader having refused them first."""
    container = _container(
        env=[{"name": "DB_PASSWORD", "value": 31415926}, {"name": "PORT", "value": 8080}],
        args=["--pin", "1", "--password", 27182818],
    )
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "shop"},
        "data": {"API_KEY": 16180339, "nested": {"password": "pw-nested-map"}, "n": None},
    }
    objects = [to_object(doc) for doc in (deployment(containers=[container]), cm)]
    dumped = json.dumps([o.raw for o in objects if o is not None])
    for planted in ("31415926", "27182818", "16180339", "pw-nested-map"):
        assert planted not in dumped, planted
    assert '"value": 8080' in dumped


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("spec.template.spec.containers[0].env[1].value", True),
        ("spec.containers[0].args[2]", True),
        ("spec.jobTemplate.spec.template.spec.initContainers[0].command[1]", True),
        ("spec.containers[0].livenessProbe.httpGet.httpHeaders[0].value", True),
        ("data.password", True),
        ("stringData.token", True),
        ("metadata.annotations.kubectl.kubernetes.io/last-applied-configuration", True),
        ("spec.template.spec.containers[0].securityContext.runAsUser", False),
        ("spec.replicas", False),
        ("metadata.creationTimestamp", False),
    ],
)
def test_fields_whose_values_messages_must_not_quote(path: str, expected: bool) -> None:
    assert may_hold_credential(path) is expected
