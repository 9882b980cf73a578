"""Hostile input through the real console script: one line and exit 2, or the one bad object
reported as not evaluated; never a traceback, never a hang."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Run, okeguard_command, one_error_line
from tests.helpers import deployment

BOMB = "".join(
    f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]\n" for level in range(1, 10)
)


def test_a_fifo_or_a_device_is_refused_instead_of_waited_on(run: Run, tmp_path: Path) -> None:
    fifo = tmp_path / "manifests.yaml"
    os.mkfifo(fifo)
    for args in (
        ("scan", "--manifests", str(fifo)),
        ("scan", "--manifests", "/dev/zero"),
        ("scan", "--snapshot", str(fifo)),
        ("scan", "--snapshot", "/dev/zero"),
        ("scan", "--demo", "--config", str(fifo)),
        ("scan", "--demo", "--config", "/dev/zero"),
        # every command reading a configuration or a kubeconfig, not only scan
        ("fix", "k8s.privileged:shop/web", "--config", str(fifo), "--cluster", "prod"),
        ("remediations", "list", "--config", "/dev/zero"),
        ("snapshot", "--kubeconfig", str(fifo), "-o", str(tmp_path / "s.jsonl")),
        ("snapshot", "--kubeconfig", "/dev/zero", "-o", str(tmp_path / "s.jsonl")),
    ):
        line = one_error_line(run(*args))  # the fixture's timeout fails a hang
        [special] = [a for a in args if a in (str(fifo), "/dev/zero")]
        assert f"{special}: not a regular file (a pipe or a device)" in line


def test_dev_zero_on_standard_input_is_not_text(tmp_path: Path) -> None:
    with open("/dev/zero", "rb") as zeros:
        done = subprocess.run(
            [*okeguard_command(), "scan", "--manifests", "-"],
            stdin=zeros,
            capture_output=True,
            timeout=60,
            check=False,
            env={**os.environ, "HOME": str(tmp_path)},
        )
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr.decode().splitlines() == [
        "okeguard: error: <stdin>: not a text file (control characters are not allowed at byte 0)"
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not a text file (invalid leading UTF-8 octet at byte 0)"),
        (b"kind: Pod\x00\x01", "not a text file (control characters are not allowed at byte 9)"),
        (
            b"kind: Pod\nmetadata: {name: \xc3\x28}\n",
            "not a text file (invalid trailing UTF-8 octet",
        ),
        (b"a: " + b"[" * 5000 + b"]" * 5000, ":1: invalid YAML: exceeded maximum nesting depth"),
        (b"kind: [unclosed\n", ":2: invalid YAML: did not find expected ',' or ']'"),
        (b"l0: &l0 [x]\n" + BOMB.encode(), ":6: l5[2]: aliases expand to more than"),
    ],
)
def test_unreadable_manifests_are_one_line_naming_the_file(
    run: Run, tmp_path: Path, content: bytes, expected: str
) -> None:
    file = tmp_path / "bad.yaml"
    file.write_bytes(content)
    line = one_error_line(run("scan", "--manifests", str(file)))
    assert line.startswith(f"okeguard: error: {file}") and expected in line


def test_a_value_that_hides_the_identity_names_file_line_and_field(
    run: Run, tmp_path: Path
) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: " + "9" * 5000 + "\n")
    line = one_error_line(run("scan", "--manifests", str(file)))
    assert line.startswith(f"okeguard: error: {file}:4: metadata.name: cannot read '9999")


def test_malformed_objects_are_not_evaluated_and_the_rest_is_scanned(
    run: Run, tmp_path: Path
) -> None:
    bad = deployment("bad")
    bad["spec"]["template"]["spec"]["containers"] = "app"
    bomb = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bomb, namespace: shop}\n"
    bomb += "spec:\n  l0: &l0 [x]\n" + "".join(f"  {line}\n" for line in BOMB.splitlines())
    stamp = yaml.safe_dump(deployment("stamp")).replace(
        "metadata:\n", "metadata:\n  creationTimestamp: 2020-13-45\n", 1
    )
    text = "---\n".join([yaml.safe_dump(bad), yaml.safe_dump(deployment("good")), bomb, stamp])
    file = tmp_path / "app.yaml"
    file.write_text(text)
    result = run("scan", "--manifests", str(file), "--format", "json", "--fail-on", "high")
    assert result.returncode == 1, result.stderr  # findings on the good one, still exit 1
    assert "Traceback" not in result.stderr
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 3 and all(str(file) in w and "not evaluated" in w for w in warnings)
    assert "spec.template.spec.containers is the string 'app', expected a list" in warnings[0]
    assert "aliases expand to more than" in warnings[1]
    assert "metadata.creationTimestamp: cannot read '2020-13-45' as timestamp" in warnings[2]
    report = json.loads(result.stdout)
    unknown = {f["resource"]["name"] for f in report["findings"] if f["status"] == "unknown"}
    assert unknown == {"bad", "bomb", "stamp"}
    assert any(f["resource"]["name"] == "good" for f in report["findings"])
    assert report["summary"]["by_status"]["unknown"] > 0


def test_a_garbage_snapshot_header_is_one_line(run: Run, tmp_path: Path) -> None:
    file = tmp_path / "snap.jsonl"
    header = {"schema": "okeguard.snapshot/v1", "cluster": {"name": "c"}, "skipped_kinds": [1]}
    file.write_text(json.dumps(header) + "\n" + json.dumps(deployment("web")) + "\n")
    line = one_error_line(run("scan", "--snapshot", str(file)))
    assert line == (
        f"okeguard: error: {file}: invalid snapshot header: "
        "skipped_kinds is a list, expected a mapping"
    )


def test_a_control_character_in_a_key_stays_on_one_line(run: Run, tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text('"a\\u2028b\\nc": !Ref x\n')
    line = one_error_line(run("scan", "--manifests", str(file)))
    assert "a\\u2028b\\x0ac: unknown tag '!Ref'" in line


def test_manifests_are_not_awaited_from_a_terminal(tmp_path: Path) -> None:
    main, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [*okeguard_command(), "scan", "--manifests", "-"],
            stdin=terminal,
            capture_output=True,
            timeout=60,
            check=False,
            env={**os.environ, "HOME": str(tmp_path)},
        )
    finally:
        os.close(main)
        os.close(terminal)
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "okeguard: error: --manifests -: standard input is a terminal; pipe the manifests in"
    ]


def test_a_bug_is_one_line_with_its_own_exit_code_never_a_verdict(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug (here: the scan service raising what no user input can cause) must not print a
    traceback nor exit 1, which CI reads as "findings"."""
    from okeguard import service
    from okeguard.bot.cli import EXIT_INTERNAL, main

    def broken(*_: object, **__: object) -> None:
        raise KeyError("cluster\nstate")

    monkeypatch.setattr(service, "run_scan", broken)
    monkeypatch.delenv("OKEGUARD_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["scan", "--demo"])
    assert exited.value.code == EXIT_INTERNAL == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("okeguard: internal error: KeyError:") and "OKEGUARD_DEBUG=1" in err
    monkeypatch.setenv("OKEGUARD_DEBUG", "1")
    with pytest.raises(KeyError):  # the traceback, on request
        main(["scan", "--demo"])


def test_a_since_too_far_back_is_refused_in_one_line(run: Run, tmp_path: Path) -> None:
    env = {"OKEGUARD_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}
    result = run("audit", "list", "--since", "99999999999d", env=env)
    assert result.returncode == 2
    assert "--since: '99999999999d' reaches before the year 1" in one_error_line(result)
