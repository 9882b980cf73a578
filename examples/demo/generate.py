"""Regenerate the demo snapshot: ``/work/venv/bin/python examples/demo/generate.py``.

Writes ``snapshot.jsonl`` next to this file: the ``okeguard.snapshot/v1`` capture of ``shop-prod``,
the OKE cluster of a small online shop, taken at 2026-11-20T08:00:00Z; and ``legacy.jsonl``, the
capture of ``shop-legacy``, the shop's old staging cluster, at the same moment
(:mod:`legacy_cluster`). ``okeguard scan --demo`` scans both (at that time, so the story never
changes). ``README.md`` tells the story; keep the two
in step. The output is byte-stable: everything comes from one seeded RNG.

The story is told area by area in :mod:`oke_system`, :mod:`shop`, :mod:`operations` and
:mod:`cluster_rbac`, on top of :mod:`kit` (the shop's conventions), :mod:`builders` and
:mod:`controllers` (live-looking objects). The objects are plain dicts, written through the same
path as ``okeguard snapshot``, so secret values are redacted to markers exactly as a live capture
would redact them.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import legacy_cluster
from builders import Cluster, Doc, at
from cluster_rbac import cluster_rbac
from kit import (
    CAPTURED_AT,
    CLUSTER,
    CLUSTER_CREATED,
    IMAGES,
    NODES_CREATED,
    REGION,
    SEED,
    ocid,
    service,
)
from oci_side import load_balancers, network_ids, oci_state
from oke_system import kube_system, node_infos, node_template
from operations import batch, platform
from shop import checkout, data, storefront

from okeguard.inventory.manifests import objects_from_documents
from okeguard.inventory.model import KubeconfigUser, SourceInfo, build_inventory
from okeguard.inventory.oci_model import OciState
from okeguard.inventory.snapshot import save_snapshot

HERE = Path(__file__).resolve().parent


def link_vault_mirror(docs: list[Doc], oci: OciState, namespace: str, name: str, key: str) -> None:
    """Mark the Secret ``namespace/name`` as the mirror of the Vault secret of the same name
    (``okeguard.io/vault-secret-id``), as the shop's platform team set it up: rotate-secret
    then rotates the Vault secret, syncs the mirror and restarts its consumers."""
    vault = next(s for s in oci.vault_secrets if s.name.endswith(f"/{name}"))
    for doc in docs:
        meta = doc["metadata"]
        if doc["kind"] == "Secret" and (meta.get("namespace"), meta["name"]) == (namespace, name):
            annotations = meta.setdefault("annotations", {})
            annotations["okeguard.io/vault-secret-id"] = vault.id
            annotations["okeguard.io/vault-secret-key"] = key
            return
    raise KeyError(f"no Secret {namespace}/{name}")


def build() -> tuple[list[Doc], list[KubeconfigUser], OciState]:
    c = Cluster(SEED, CLUSTER_CREATED, CAPTURED_AT)
    c.node_created = NODES_CREATED
    cluster_ocid = ocid(c, "cluster")
    compartment = ocid(c, "compartment", region=None)

    for address, cidr, first in (
        ("10.0.10.21", "10.244.0.", 1),
        ("10.0.10.37", "10.244.0.", 129),
        ("10.0.10.54", "10.244.1.", 1),
    ):
        c.add_node(address, cidr, first)

    # --- certificates ---------------------------------------------------------------------------
    cluster_ca = c.certs.authority(
        "cluster-ca",
        "Oracle Container Engine for Kubernetes",
        CLUSTER_CREATED,
        CLUSTER_CREATED + timedelta(days=5 * 365),
    )
    public_ca = c.certs.authority(
        "Example Public TLS CA R3",
        "Example Trust Services (demo)",
        at("2024-03-01T00:00:00"),
        at("2029-03-01T00:00:00"),
    )
    internal_ca = c.certs.authority(
        "ShopCo Internal CA", "ShopCo", at("2025-02-13T10:00:00"), at("2030-02-12T10:00:00")
    )
    storefront_cert = c.certs.server(
        public_ca,
        ["shopco.example", "www.shopco.example"],
        at("2026-10-25T03:12:45"),
        at("2027-01-23T03:12:44"),
    )
    checkout_cert = c.certs.server(
        public_ca, ["checkout.shopco.example"], at("2025-12-04T00:00:00"), at("2026-12-04T23:59:59")
    )
    admin_cert = c.certs.server(
        public_ca, ["admin.shopco.example"], at("2025-09-29T00:00:00"), at("2026-09-29T23:59:59")
    )
    postgres_cert = c.certs.server(
        internal_ca,
        [
            "postgres.data.svc.cluster.local",
            "postgres.data.svc",
            "postgres-0.postgres.data.svc.cluster.local",
        ],
        at("2026-03-01T10:00:00"),
        at("2027-03-01T10:00:00"),
    )
    ca_pem = cluster_ca.cert_pem

    def tls_secret(
        namespace: str, name: str, created: Any, cert: Any, chain: str = "", **meta: Any
    ) -> None:
        c.secret(
            namespace,
            name,
            created,
            "kubernetes.io/tls",
            {"tls.crt": cert.cert_pem + chain, "tls.key": cert.key_pem},
            **meta,
        )

    def cert_manager_annotations(cert_name: str, issuer: str, hosts: list[str]) -> dict[str, Any]:
        return {
            "labels": {"controller.cert-manager.io/fao": "true"},
            "annotations": {
                "cert-manager.io/alt-names": ",".join(hosts),
                "cert-manager.io/certificate-name": cert_name,
                "cert-manager.io/common-name": hosts[0],
                "cert-manager.io/ip-sans": "",
                "cert-manager.io/issuer-group": "cert-manager.io",
                "cert-manager.io/issuer-kind": "ClusterIssuer",
                "cert-manager.io/issuer-name": issuer,
                "cert-manager.io/uri-sans": "",
            },
        }

    # --- namespaces -----------------------------------------------------------------------------
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        c.namespace(name, CLUSTER_CREATED, ca_pem)
    restricted = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    c.namespace(
        "storefront",
        at("2025-02-12T13:05:41"),
        ca_pem,
        {"shopco.example/team": "storefront", **restricted},
    )
    c.namespace(
        "checkout",
        at("2025-02-12T13:05:42"),
        ca_pem,
        {
            "shopco.example/team": "checkout",
            "pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/warn": "restricted",
        },
    )
    c.namespace(
        "data", at("2025-02-12T13:05:42"), ca_pem, {"shopco.example/team": "platform", **restricted}
    )
    c.namespace("platform", at("2025-02-13T08:47:19"), ca_pem, {"shopco.example/team": "platform"})
    c.namespace("batch", at("2025-06-03T11:20:07"), ca_pem, {"shopco.example/team": "data"})

    service(
        c,
        "default",
        "kubernetes",
        CLUSTER_CREATED,
        {},
        [{"name": "https", "port": 443, "targetPort": 6443}],
        cluster_ip="10.96.0.1",
        labels={"component": "apiserver", "provider": "kubernetes"},
    )

    kube_system(c, cluster_ocid)
    storefront(c, storefront_cert, public_ca)
    checkout(c, checkout_cert, public_ca)
    data(c, postgres_cert, internal_ca, cert_manager_annotations)
    platform(c, admin_cert, internal_ca, public_ca, tls_secret, ca_pem)
    batch(c)
    cluster_rbac(c)

    c.node_docs(node_template(compartment), node_infos(c, cluster_ocid), [IMAGES["pause"]])

    # --- the OCI side (after the Kubernetes objects, whose OCIDs and IPs it repeats) -------------
    ids = network_ids(c, c.docs)
    load_balancers(c, internal_ca, tls_secret, ids["subnets"], ids["nsgs"])
    oci = oci_state(c, c.docs, ids, cluster_ocid, compartment)
    link_vault_mirror(c.docs, oci, "data", "postgres-superuser", "password")

    users = [
        KubeconfigUser(
            name=f"user-{cluster_ocid[-11:]}",
            auth=("exec",),
            exec_command="oci",
            exec_args=(
                "ce",
                "cluster",
                "generate-token",
                "--cluster-id",
                cluster_ocid,
                "--region",
                REGION,
            ),
        ),
        KubeconfigUser(name="ci-deployer", auth=("token",)),
    ]
    return c.docs, users, oci


def write(
    name: str,
    cluster: str,
    docs: list[Doc],
    users: list[KubeconfigUser],
    oci: OciState,
    server: str,
    version: str,
) -> None:
    objects = objects_from_documents(docs, "generate.py")
    inventory = build_inventory(
        objects,
        cluster=cluster,
        source=SourceInfo("snapshot", {"generator": "examples/demo/generate.py"}),
        whole_cluster=True,
        captured_at=CAPTURED_AT,
        kubeconfig_users=users,
        oci=oci,
    )
    path = HERE / name
    size = save_snapshot(
        inventory,
        path,
        cluster_info={"context": cluster, "server": server, "kubernetes_version": version},
    )
    print(
        f"wrote {path} ({inventory.object_count} objects, {len(inventory.workloads)} workloads, {size:,} bytes)",
        file=sys.stderr,
    )


def main() -> int:
    docs, users, oci = build()
    write("snapshot.jsonl", CLUSTER, docs, users, oci, "https://10.0.0.10:6443", "v1.31.1")
    docs, users, oci, server = legacy_cluster.build()
    version = legacy_cluster.KUBERNETES_VERSION
    write("legacy.jsonl", legacy_cluster.CLUSTER, docs, users, oci, server, version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
