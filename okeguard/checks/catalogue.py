"""Imports every check module so that their checks register (see :mod:`okeguard.checks.registry`)."""

from okeguard.checks import (  # noqa: F401
    cluster,
    images,
    kubeconfig,
    network,
    oke_cluster,
    oke_network,
    oke_services,
    rbac,
    secrets,
    workloads,
)
