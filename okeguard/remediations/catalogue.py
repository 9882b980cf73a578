"""Every module that registers a planner (``@planner``) or an action (``@action``), imported here.

The one place a new remediation module is listed. The default registries
(``planners.PLANNERS``, ``engine.ACTIONS``) import this module on their first lookup, as
``all_checks()`` imports ``okeguard.checks.catalogue``.
"""

from okeguard.remediations import (  # noqa: F401
    endpoint,
    kube_actions,
    network_policy,
    nsg_lb,
    nsg_migration,
    oci_actions,
    oci_attach,
    secret_actions,
    secret_mirror,
    secret_rotation,
    security_context,
    token_actions,
)
