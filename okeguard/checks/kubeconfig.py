"""Local kubeconfig check (practice P19): people should use short-lived OKE tokens."""

from __future__ import annotations

from collections.abc import Iterator

from okeguard.checks.model import ResourceRef, Severity
from okeguard.checks.registry import CheckContext, Hit, check

STATIC_MECHANISMS = {
    "token": "a static token",
    "token-file": "a static token file",
    "password": "a username and password",
    "client-key": "a client certificate key",
}


@check(
    id="kubeconfig.static-credentials",
    title="Static credentials in kubeconfig",
    practice="P19",
    severity=Severity.MEDIUM,
)
def static_credentials(ctx: CheckContext) -> Iterator[Hit]:
    """A kubeconfig user entry authenticates with a static `token`, `password` or client key
    instead of an `exec` of `oci ce cluster generate-token` (short-lived, per-user tokens).
    Evaluated when the scan reads a kubeconfig (live scans, snapshots, `--kubeconfig`)."""
    for user in ctx.inventory.kubeconfig_users or ():
        static = [STATIC_MECHANISMS[a] for a in user.auth if a in STATIC_MECHANISMS]
        if static:
            yield Hit(
                ResourceRef("KubeconfigUser", None, user.name),
                f"kubeconfig user {user.name!r} authenticates with {' and '.join(static)} instead of an exec of 'oci ce cluster generate-token'.",
            )
