"""The posture score: one number per cluster for summaries and digests.

The share, in percent, of the checks that ran whose weighted severity has no open finding on the
cluster: a check that fires anywhere counts as failing once, however many resources it flags, so
one noisy check cannot sink the score and fixing a whole class of problem moves it visibly.
Weights: critical 10, high 5, medium 3, low 1, info 0.5. A check not evaluated for lack of
permissions counts as failing (fail closed: the score never improves by not looking).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from okeguard.checks.model import Severity

SEVERITY_WEIGHTS: Mapping[str, float] = {
    Severity.CRITICAL: 10.0,
    Severity.HIGH: 5.0,
    Severity.MEDIUM: 3.0,
    Severity.LOW: 1.0,
    Severity.INFO: 0.5,
}


def posture_score(checks: Mapping[str, str], failing: Iterable[str]) -> int:
    """``checks`` maps every check id that ran to its default severity; ``failing`` are the
    check ids with an open (or unknown) finding. Returns 0-100 (100 when nothing ran)."""
    failed = set(failing)
    total = sum(SEVERITY_WEIGHTS.get(sev, 1.0) for sev in checks.values())
    if total == 0:
        return 100
    passed = sum(
        SEVERITY_WEIGHTS.get(sev, 1.0) for check, sev in checks.items() if check not in failed
    )
    return round(100 * passed / total)
