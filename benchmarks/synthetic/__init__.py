"""A deterministic synthetic cluster for the scale benchmark (``scan_scale.py``).

:func:`generate_cluster` returns the objects of one large cluster as the API server would list
them (uids, resource versions, creation times, defaulted fields, status), every value drawn from
one seeded RNG so the same seed and scale always give the same bytes. At ``scale=1`` it holds
10,000 workloads in 500 namespaces, 2,000 RBAC objects, 5,000 Secrets and 1,000 ConfigMaps, plus
Namespaces, NetworkPolicies for most namespaces and a few Nodes with ``status.images``.

The mix is meant to look like a real, mostly well-kept cluster: most pods are hardened, some are
not, a few are plainly dangerous (privileged, hostPath, literal credentials in env).
"""

from __future__ import annotations

from dataclasses import dataclass

from synthetic.base import APPS, NETWORK_POLICY_SHARE, TEAMS, WORKLOAD_MIX, Doc, Gen, Sizes
from synthetic.objects import config_map, namespace, network_policy, node, rbac, secret
from synthetic.workloads import workload

__all__ = ["Cluster", "Sizes", "generate_cluster"]


@dataclass
class Cluster:
    """The generated objects: namespaced ones by namespace, cluster-scoped ones by file."""

    namespaced: dict[str, list[Doc]]
    cluster_scoped: dict[str, list[Doc]]

    def documents(self) -> list[Doc]:
        docs = [doc for items in self.cluster_scoped.values() for doc in items]
        return docs + [doc for items in self.namespaced.values() for doc in items]


def generate_cluster(sizes: Sizes, seed: int) -> Cluster:
    """Every object of the synthetic cluster, deterministically from ``seed``."""
    g = Gen(seed)
    names = ["kube-system", "monitoring", "logging"]
    names += [
        f"{g.rng.choice(TEAMS)}-{g.rng.choice(APPS)}-{i}"
        for i in range(len(names), sizes.namespaces)
    ]
    names = names[: sizes.namespaces]
    namespaced: dict[str, list[Doc]] = {name: [namespace(g, name)] for name in names}
    apps: dict[str, list[str]] = {name: [] for name in names}
    kinds = g.rng.choices(list(WORKLOAD_MIX), list(WORKLOAD_MIX.values()), k=sizes.workloads)
    # The agents a real cluster runs, so the cluster-wide checks find them.
    fixed = [
        ("logging", "DaemonSet", "fluent-bit"),
        ("monitoring", "DaemonSet", "node-exporter"),
        ("monitoring", "StatefulSet", "prometheus"),
    ]
    for i, kind in enumerate(kinds):
        if i < len(fixed) and fixed[i][0] in namespaced:
            ns, kind, name = fixed[i]
        else:
            ns = g.rng.choice(names)
            name = f"{g.rng.choice(APPS)}-{i}"
        apps[ns].append(name)
        namespaced[ns].append(workload(g, kind, ns, name))
    for i in range(sizes.secrets):
        ns = g.rng.choice(names)
        namespaced[ns].append(secret(g, ns, g.rng.choice(apps[ns] or APPS), i))
    for i in range(sizes.config_maps):
        ns = g.rng.choice(names)
        namespaced[ns].append(config_map(g, ns, g.rng.choice(apps[ns] or APPS), i))
    for name in names:
        if name != "kube-system" and g.rng.random() < NETWORK_POLICY_SHARE:
            namespaced[name].append(network_policy(g, name, apps[name]))
    rbac_docs = rbac(g, names, sizes.rbac)
    for doc in rbac_docs:
        if "namespace" in doc["metadata"]:
            namespaced[doc["metadata"]["namespace"]].append(doc)
    cluster_scoped = {
        "rbac": [doc for doc in rbac_docs if "namespace" not in doc["metadata"]],
        "nodes": [node(g, i) for i in range(sizes.nodes)],
    }
    return Cluster(namespaced, cluster_scoped)
