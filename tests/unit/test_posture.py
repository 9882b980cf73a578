"""The posture score weighs checks, not resources, by severity."""

from __future__ import annotations

from okeguard.posture import posture_score

CHECKS = {"a": "critical", "b": "high", "c": "medium", "d": "low", "e": "info"}  # 19.5 in all


def test_nothing_failing_is_100_and_everything_failing_is_0() -> None:
    assert posture_score(CHECKS, []) == 100
    assert posture_score(CHECKS, CHECKS) == 0


def test_a_critical_weighs_more_than_the_rest_together() -> None:
    assert posture_score(CHECKS, ["a"]) == round(100 * 9.5 / 19.5)
    assert posture_score(CHECKS, ["b", "c", "d", "e"]) == round(100 * 10 / 19.5)


def test_unknown_check_ids_in_failing_are_ignored_and_empty_runs_score_100() -> None:
    assert posture_score(CHECKS, ["zzz"]) == 100
    assert posture_score({}, ["a"]) == 100
