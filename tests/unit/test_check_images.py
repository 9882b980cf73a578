"""Spec tests for the image checks of CHECKS.md: k8s.mutable-image-tag, k8s.image-not-pinned,
k8s.untrusted-registry and k8s.large-image.

Written from the specification (CHECKS.md), not from okeguard/checks/images.py.
"""

from __future__ import annotations

import pytest

from tests.helpers import config
from tests.unit.factories import DIGEST, assert_finding, container, node, one, run, workload


def _with_image(image: str, kind: str = "Deployment") -> dict:
    return workload(kind, containers=[container(image=image)])


# ---------------------------------------------------------------------------------------------
# k8s.mutable-image-tag / k8s.image-not-pinned

IMAGE_CASES = [
    # image, mutable-image-tag?, image-not-pinned?
    ("nginx", True, False),
    ("nginx:latest", True, False),
    ("docker.io/library/nginx:latest", True, False),
    ("nginx:latest@" + DIGEST, False, False),  # tag + digest: the digest pins it
    ("nginx@" + DIGEST, False, False),
    ("nginx:1.27", False, True),
    ("nginx:1.27@" + DIGEST, False, False),
    ("fra.ocir.io/shopco/api:2.4.1", False, True),
    ("registry.example.com:5000/team/app", True, False),  # the port is not a tag
    ("registry.example.com:5000/team/app:latest", True, False),
    ("registry.example.com:5000/team/app:1.0", False, True),
    ("registry.example.com:5000/team/app@" + DIGEST, False, False),
]


@pytest.mark.parametrize(("image", "mutable", "_"), IMAGE_CASES)
def test_mutable_image_tag(image: str, mutable: bool, _: bool) -> None:
    found = run("k8s.mutable-image-tag", [_with_image(image)])
    if not mutable:
        assert found == []
        return
    assert_finding(
        one(found),
        check_id="k8s.mutable-image-tag",
        severity="medium",
        kind="Deployment",
        namespace="shop",
        name="web",
        container="app",
        remediation="guidance",
        mentions=(image,),
    )


@pytest.mark.parametrize(("image", "_", "unpinned"), IMAGE_CASES)
def test_image_not_pinned(image: str, _: bool, unpinned: bool) -> None:
    found = run("k8s.image-not-pinned", [_with_image(image)])
    if not unpinned:
        assert found == []
        return
    assert_finding(
        one(found),
        check_id="k8s.image-not-pinned",
        severity="info",
        kind="Deployment",
        namespace="shop",
        name="web",
        container="app",
        remediation="guidance",
        mentions=(image,),
    )


def test_image_checks_cover_init_containers() -> None:
    doc = workload(
        "StatefulSet",
        "db",
        init_containers=[container("init", image="busybox")],
        containers=[container("db", image="postgres:16.4")],
    )
    mutable = one(run("k8s.mutable-image-tag", [doc]))
    assert (mutable.resource.kind, mutable.resource.container) == ("StatefulSet", "init")
    unpinned = one(run("k8s.image-not-pinned", [doc]))
    assert (unpinned.resource.kind, unpinned.resource.container) == ("StatefulSet", "db")


# ---------------------------------------------------------------------------------------------
# k8s.untrusted-registry


def test_untrusted_registry_off_when_allow_list_empty() -> None:
    assert run("k8s.untrusted-registry", [_with_image("evil.example.net/miner:1.0")]) == []


@pytest.mark.parametrize(
    ("allowed", "image", "flagged"),
    [
        (("registry.example.com",), "registry.example.com/shop/app:1.0", False),
        (("registry.example.com",), "quay.io/shop/app:1.0", True),
        # Docker Hub short names: `nginx` is docker.io/library/nginx.
        (("registry.example.com",), "nginx:1.27", True),
        (("docker.io",), "nginx:1.27", False),
        (("docker.io",), "bitnami/redis:7.2", False),
        (("docker.io",), "docker.io/library/nginx:1.27", False),
        (("docker.io/library",), "nginx:1.27", False),
        # index.docker.io is Docker Hub's legacy name; image references normalise it to docker.io.
        (("docker.io",), "index.docker.io/library/nginx:1.27", False),
        (("docker.io/library",), "bitnami/redis:7.2", True),
        # host:port registries
        (("registry.local:5000",), "registry.local:5000/team/app:1.0", False),
        (("registry.local:5000",), "registry.local/team/app:1.0", True),
        (("registry.local",), "registry.local:5000/team/app:1.0", True),
        # registry/path prefixes (OCIR namespaces)
        (("fra.ocir.io/shopco",), "fra.ocir.io/shopco/api:2.4.1", False),
        (("fra.ocir.io/shopco",), "fra.ocir.io/shopco/team/api@" + DIGEST, False),
        (("fra.ocir.io/shopco",), "fra.ocir.io/otherco/api:2.4.1", True),
        # Left open by CHECKS.md: a prefix matches whole path segments only, as a kubescape/
        # Kyverno user expects; `shopco-evil` is somebody else's namespace.
        (("fra.ocir.io/shopco",), "fra.ocir.io/shopco-evil/api:1.0", True),
        (("fra.ocir.io",), "fra.ocir.io.evil.example/shopco/api:1.0", True),
        (("fra.ocir.io", "registry.example.com"), "registry.example.com/x/y:1", False),
    ],
)
def test_untrusted_registry(allowed: tuple[str, ...], image: str, flagged: bool) -> None:
    found = run(
        "k8s.untrusted-registry", [_with_image(image)], config=config(allowed_registries=allowed)
    )
    if not flagged:
        assert found == [], [f.message for f in found]
        return
    assert_finding(
        one(found),
        check_id="k8s.untrusted-registry",
        severity="medium",
        kind="Deployment",
        namespace="shop",
        name="web",
        container="app",
        remediation="guidance",
        mentions=(image,),
    )


def test_untrusted_registry_message_names_the_implied_docker_hub_registry() -> None:
    found = run(
        "k8s.untrusted-registry",
        [_with_image("nginx:1.27")],
        config=config(allowed_registries=("fra.ocir.io",)),
    )
    assert "docker.io" in one(found).message


# ---------------------------------------------------------------------------------------------
# k8s.large-image (needs Node.status.images: whole-cluster inventories)

MB = 1_000_000


def _large(image: str, node_names: list[str], size: int, **kwargs) -> list:
    docs = [_with_image(image), node("10.0.10.5", [(node_names, size)])]
    return run("k8s.large-image", docs, whole_cluster=True, **kwargs)


def test_large_image_over_default_limit_flagged() -> None:
    image = "registry.example.com/shop/ml:3.1"
    f = one(_large(image, [image, "registry.example.com/shop/ml@" + DIGEST], 600 * MB))
    assert_finding(
        f,
        check_id="k8s.large-image",
        severity="low",
        kind="Deployment",
        namespace="shop",
        name="web",
        container="app",
        remediation="guidance",
        mentions=(image, "600"),
    )


def test_large_image_under_default_limit_passes() -> None:
    image = "registry.example.com/shop/app:3.1"
    assert _large(image, [image], 400 * MB) == []


def test_large_image_limit_is_configurable() -> None:
    image = "registry.example.com/shop/app:3.1"
    assert len(_large(image, [image], 400 * MB, config=config(max_image_size_mb=300))) == 1
    assert _large(image, [image], 600 * MB, config=config(max_image_size_mb=1000)) == []


def test_large_image_unknown_size_passes() -> None:
    image = "registry.example.com/shop/app:3.1"
    assert _large(image, ["registry.example.com/shop/other:1.0"], 900 * MB) == []


def test_large_image_matches_docker_hub_short_names() -> None:
    # The kubelet reports normalised names (docker.io/library/...); the pod spec says `nginx:1.27`.
    found = _large(
        "nginx:1.27",
        ["docker.io/library/nginx:1.27", "docker.io/library/nginx@" + DIGEST],
        700 * MB,
    )
    assert one(found).resource.container == "app"


def test_large_image_matches_by_digest() -> None:
    image = "registry.example.com/shop/ml@" + DIGEST
    found = _large(image, ["registry.example.com/shop/ml@" + DIGEST], 800 * MB)
    assert one(found).severity.value == "low"
