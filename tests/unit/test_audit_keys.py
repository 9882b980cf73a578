"""Reading the audit key from the environment: one-line errors that never show the key."""

from __future__ import annotations

import pickle
import secrets
from pathlib import Path

import pytest

from okeguard.audit.anchors import parse_anchor, read_anchors
from okeguard.audit.keys import AuditKey, AuditKeyError, KeyRing, MacCheck, load_keys
from okeguard.errors import UsageError

SECRET = "c0ffee" * 11  # a test key: fixed, so the test ids are the same in every worker


def _error(env: dict[str, str]) -> str:
    with pytest.raises(AuditKeyError) as caught:
        load_keys(env)
    message = str(caught.value)
    assert "\n" not in message and caught.value.exit_code == 2
    return message


def test_no_key_configured_is_an_unkeyed_ring() -> None:
    assert not load_keys({}).keyed and load_keys({}).sign("a" * 64) is None


def test_the_key_from_the_variable_or_a_file_is_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(f"  {SECRET}\n")  # a Secret mounted as a file often ends in a newline
    from_env = load_keys({"OKEGUARD_AUDIT_KEY": SECRET}).current
    from_file = load_keys({"OKEGUARD_AUDIT_KEY_FILE": str(path)}).current
    assert from_env is not None and from_file is not None
    assert from_env.key_id == from_file.key_id and len(from_env.key_id) == 16
    assert from_env.mac("a" * 64) == from_file.mac("a" * 64)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "the audit key is empty"),
        (b"   \n", "the audit key is empty"),
        (b"short-key\n", "must be 32 to 1024 characters long, it has 9"),
        (SECRET.encode() + b"\n" + SECRET.encode(), "must be a single line"),
        (b"\xff\xfe" + SECRET.encode(), "is not UTF-8 text"),
        (b"x" * 5000, "not an audit key file (more than 4 KiB)"),
    ],
    ids=["empty", "blank", "short", "two-lines", "binary", "huge"],
)
def test_a_malformed_key_file_is_one_line_without_its_content(
    tmp_path: Path, content: bytes, why: str
) -> None:
    path = tmp_path / "key"
    path.write_bytes(content)
    message = _error({"OKEGUARD_AUDIT_KEY_FILE": str(path)})
    assert message.startswith(f"OKEGUARD_AUDIT_KEY_FILE={path}: ") and why in message
    assert SECRET not in message and "short-key" not in message


def test_other_key_mistakes_are_one_line(tmp_path: Path) -> None:
    assert "cannot read the audit key file (No such file" in _error(
        {"OKEGUARD_AUDIT_KEY_FILE": str(tmp_path / "missing")}
    )
    assert "set OKEGUARD_AUDIT_KEY or OKEGUARD_AUDIT_KEY_FILE, not both" in _error(
        {"OKEGUARD_AUDIT_KEY": SECRET, "OKEGUARD_AUDIT_KEY_FILE": str(tmp_path / "k")}
    )
    assert "OKEGUARD_AUDIT_KEY is not" in _error({"OKEGUARD_AUDIT_KEY_PREVIOUS": SECRET})
    same = _error({"OKEGUARD_AUDIT_KEY": SECRET, "OKEGUARD_AUDIT_KEY_PREVIOUS": SECRET})
    assert "is the same key" in same and SECRET not in same
    wrong = _error({"OKEGUARD_AUDIT_KEY": "not-a-key-of-32-chars"})
    assert "not-a-key" not in wrong


def test_a_key_shows_only_its_id_and_cannot_be_pickled() -> None:
    key = AuditKey(SECRET)
    ring = KeyRing(key)
    for shown in (repr(key), str(key), repr(ring), str(ring)):
        assert SECRET not in shown and key.key_id in shown
    with pytest.raises(TypeError):
        pickle.dumps(ring)


def test_the_ring_tells_current_previous_missing_and_wrong_macs() -> None:
    old, new = AuditKey(secrets.token_hex(32)), AuditKey(SECRET)
    ring = KeyRing(new, previous=old)
    digest = "ab" * 32
    assert ring.check(digest, new.mac(digest)) is MacCheck.CURRENT
    assert ring.check(digest, new.mac(digest).upper()) is MacCheck.CURRENT
    assert ring.check(digest, old.mac(digest)) is MacCheck.PREVIOUS
    assert ring.check(digest, None) is MacCheck.MISSING
    assert ring.check(digest, new.mac("cd" * 32)) is MacCheck.WRONG
    assert KeyRing(new).check(digest, old.mac(digest)) is MacCheck.WRONG


def test_anchors_parse_strictly(tmp_path: Path) -> None:
    digest = "3F9C" + "0" * 60
    anchor = parse_anchor(f" 1234:{digest} ")
    assert (anchor.id, anchor.hash, anchor.short) == (1234, digest.lower(), "1234:3f9c0000…")
    for bad in ("1234", "1234:3f9c", f"x:{digest}", f"-1:{digest}", f"1234:{digest}0"):
        with pytest.raises(UsageError, match="is not an anchor"):
            parse_anchor(bad)
    path = tmp_path / "anchors.txt"
    path.write_text(f"# taken daily\n\n12:{'a' * 64}  # Monday\n{anchor}\n")
    assert read_anchors(str(path)) == [parse_anchor(f"12:{'a' * 64}"), anchor]
    path.write_text(f"12:{'a' * 64}\nnonsense\n")
    with pytest.raises(UsageError, match=r"anchors.txt line 2: 'nonsense' is not an anchor"):
        read_anchors(str(path))
    with pytest.raises(UsageError, match="cannot read it"):
        read_anchors(str(tmp_path / "missing.txt"))
