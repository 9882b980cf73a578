"""JSON log lines, request ids across threads, and redaction of every kind of secret."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from okeguard.logs import (
    REDACTED,
    configure_logging,
    current_request_id,
    redact,
    register_secrets,
    request_context,
)

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx7Zq\nabcdefghijklmnop\n"
    "-----END RSA PRIVATE KEY-----"
)


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose records end up, as JSON lines, in the returned buffer (DEBUG)."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buffer = io.StringIO()
    configure_logging(logging.DEBUG, json=True, stream=buffer)
    try:
        yield logging.getLogger("okeguard.test"), buffer
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_one_json_object_per_line_with_its_fields(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    log, buffer = logged
    log.info("scanned %s", "prod", extra={"cluster": "prod", "findings": {"high": 2}})
    log.warning("multi\nline")
    first, second = lines(buffer)
    assert first["level"] == "INFO" and first["logger"] == "okeguard.test"
    assert first["message"] == "scanned prod"
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert first["cluster"] == "prod" and first["findings"] == {"high": 2}
    assert "request_id" not in first
    assert second["message"] == "multi\nline" and len(buffer.getvalue().splitlines()) == 2


def test_exceptions_are_a_type_and_one_line_tracebacks_only_at_debug() -> None:
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        for level, traceback in ((logging.INFO, False), (logging.DEBUG, True)):
            buffer.seek(0)
            buffer.truncate()
            configure_logging(level, json=True, stream=buffer)
            try:
                raise ValueError("bad\nvalue xoxb-1234-5678-abcdefgh")
            except ValueError:
                logging.getLogger("okeguard.test").exception("failed")
            [line] = lines(buffer)
            assert line["exc_type"] == "ValueError"
            assert line["exc_message"] == f"bad value xoxb-{REDACTED}"
            assert ("traceback" in line) is traceback
            assert "abcdefgh" not in buffer.getvalue()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_the_request_id_is_set_for_a_block_and_reset_after() -> None:
    assert current_request_id() is None
    with request_context() as outer:
        assert len(outer) == 12 and current_request_id() == outer
        with request_context("inner") as inner:
            assert current_request_id() == inner == "inner"
        assert current_request_id() == outer
    assert current_request_id() is None


def test_request_ids_stay_with_their_threads(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, buffer = logged
    barrier = threading.Barrier(4)

    def work(rid: str) -> None:
        with request_context(rid):
            barrier.wait()
            for i in range(20):
                log.info("step %d of %s", i, rid)

    threads = [threading.Thread(target=work, args=(f"rid-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    with request_context("main"):
        log.info("main thread of main")
    for thread in threads:
        thread.join()
    records = lines(buffer)
    assert len(records) == 81
    for record in records:
        assert record["message"].endswith(f"of {record['request_id']}")


def test_a_new_thread_does_not_inherit_the_request_id(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    log, buffer = logged
    with request_context("parent"):
        thread = threading.Thread(target=lambda: log.info("in a thread"))
        thread.start()
        thread.join()
    assert "request_id" not in lines(buffer)[0]


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("token xoxb-1234567890-0987654321-AbCdEfGhIjKl sent", "AbCdEfGhIjKl", "xoxb-"),
        ("user token xoxp-11-22-33-deadbeefcafe", "deadbeefcafe", "xoxp-"),
        ("app token xapp-1-A0123-4567-f00dfeedbeef", "f00dfeedbeef", "xapp-"),
        ("refresh xoxr-abc-def-0011223344", "0011223344", "xoxr-"),
        ("sent Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-nature", "eyJhbGci", "Bearer"),
        ("headers: {'Authorization': 'Basic dXNlcjpwYXNz', 'X': 1}", "dXNlcjpwYXNz", "'X': 1"),
        (
            'Authorization: Signature keyId="ocid1.tenancy/x",signature="c2lnbmF0dXJl"',
            "c2lnbmF0",
            "",
        ),
        ("key is " + PEM + " end", "MIIEowIBAAKCAQEAx7Zq", " end"),
        ("escaped " + PEM.replace("\n", "\\n"), "abcdefghijklmnop", "escaped"),
        (
            "db postgresql://okeguard:pa55-w0rd@db.internal:5432/okeguard",
            "pa55-w0rd",
            "@db.internal",
        ),
        ("url postgresql+psycopg://u:p%40ss@h/db", "p%40ss", "postgresql+psycopg://u:"),
    ],
)
def test_secret_looking_material_is_redacted(text: str, secret: str, kept: str) -> None:
    out = redact(text)
    assert secret not in out and "[REDACTED" in out
    assert kept in out


def test_ocids_and_ordinary_text_are_kept() -> None:
    text = (
        "cluster ocid1.cluster.oc1.eu-frankfurt-1.aaaaaaaexample, image fra.ocir.io/ns/web:1, "
        "https://example.com/path, fingerprint 20:3b:97:13:55:1c"
    )
    assert redact(text) == text


def test_values_of_secret_environment_variables_are_redacted(
    monkeypatch: pytest.MonkeyPatch, logged: tuple[logging.Logger, io.StringIO]
) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "8f14e45fceea167a5a36dedd4bea2543")
    monkeypatch.setenv("OKEGUARD_DATABASE_URL", "sqlite:////var/lib/okeguard/weird-secret.db")
    monkeypatch.setenv("SLACK_DEBUG", "1")  # too short to be a secret: left alone
    log, buffer = logged
    log.info(
        "signature %s from %s",
        "v0=8f14e45fceea167a5a36dedd4bea2543",
        "sqlite:////var/lib/okeguard/weird-secret.db",
        extra={"detail": {"nested": ["x 8f14e45fceea167a5a36dedd4bea2543"]}, "count": 1},
    )
    out = buffer.getvalue()
    assert "8f14e45fceea167a5a36dedd4bea2543" not in out and "weird-secret" not in out
    [line] = lines(buffer)
    assert line["message"] == f"signature v0={REDACTED} from {REDACTED}"
    assert line["detail"] == {"nested": [f"x {REDACTED}"]} and line["count"] == 1


def test_registered_secrets_are_redacted_in_args_and_extra(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    register_secrets(["passed-in-not-inherited-0042", "short"])
    log, buffer = logged
    log.info("%s", "value passed-in-not-inherited-0042", extra={"v": "short"})
    [line] = lines(buffer)
    assert line["message"] == f"value {REDACTED}"
    assert line["v"] == "short"  # shorter than 8 characters: not registered


def test_text_format_is_redacted_too() -> None:
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(logging.INFO, json=False, stream=buffer)
        with request_context("abc123"):
            logging.getLogger("okeguard.test").warning("token %s", "xoxb-1-2-secretpart")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert buffer.getvalue() == f"[abc123] WARNING okeguard.test: token xoxb-{REDACTED}\n"


def test_kubernetes_response_bodies_are_never_logged_at_debug(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    _, buffer = logged
    logging.getLogger("kubernetes.client.rest").debug("response body: %s", "{...}")
    assert buffer.getvalue() == ""
