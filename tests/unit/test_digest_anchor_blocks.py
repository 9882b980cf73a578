"""The audit head in the daily digest: short to read, in full to copy, within Slack's limits."""

from __future__ import annotations

from dataclasses import replace

import pytest

from okeguard.audit.anchors import Anchor
from okeguard.bot.slack.blocks import digest_message
from tests.unit.test_slack_blocks import check_message, digest, texts

HEAD = Anchor(1234, "3f9c" + "ab" * 30)


def test_the_digest_shows_the_audit_head_short_and_in_full() -> None:
    out = check_message(digest_message(replace(digest(2, 8), audit_head=HEAD), chart_attached=True))
    contexts = [b for b in out if b["type"] == "context" and "Audit head" in str(b)]
    assert len(contexts) == 1 and out[-1] == contexts[0]  # the last block, after the lists
    short, full = (e["text"] for e in contexts[0]["elements"])
    assert short == ":link: Audit head `1234:3f9cabab…`"
    assert f"`1234:{HEAD.hash}`" in full and "okeguard audit verify --head" in full


def test_a_digest_without_an_audit_head_has_no_anchor_block() -> None:
    out = check_message(digest_message(digest(2, 8), chart_attached=False))
    assert not any("Audit head" in t for t in texts(out))


@pytest.mark.parametrize("clusters", [0, 1, 10, 12, 13, 40, 49, 500])
def test_the_anchor_keeps_the_digest_within_50_blocks(clusters: int) -> None:
    big = replace(digest(clusters, 500, requests=300, exceptions=300), audit_head=HEAD)
    out = check_message(digest_message(big, chart_attached=True))
    assert any(f"1234:{HEAD.hash}" in t for t in texts(out))  # never cut for room
