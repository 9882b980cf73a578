"""Image checks (practice P17): mutable tags, pinning, size, and the registry allow list."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from okeguard.checks._common import WORKLOAD_READS, container_label, workload_hit
from okeguard.checks.model import Severity
from okeguard.checks.registry import CheckContext, Hit, check
from okeguard.inventory.model import Container, Inventory, Workload

DEFAULT_REGISTRY = "docker.io"
DOCKER_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io")


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A parsed image reference: ``registry/repository[:tag][@digest]``."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"


@functools.lru_cache(maxsize=65536)
def parse_image(reference: str) -> ImageRef:
    """Parse an image reference the way container runtimes do (``nginx`` is ``docker.io/library/nginx``)."""
    rest, _, digest = reference.strip().partition("@")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = DEFAULT_REGISTRY, rest
    if registry.lower() in (DEFAULT_REGISTRY, *DOCKER_HUB_ALIASES) and "/" not in path:
        path = f"library/{path}"
    tag = None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1 :]
    registry = registry.lower()
    if registry in DOCKER_HUB_ALIASES:
        registry = DEFAULT_REGISTRY
    return ImageRef(registry, path, tag or None, digest or None)


def _images(ctx: CheckContext) -> Iterator[tuple[Workload, Container, ImageRef]]:
    """Every container that names an image, with the parsed reference."""
    return iter(ctx.shared("images", _parsed_images))


def _parsed_images(ctx: CheckContext) -> tuple[tuple[Workload, Container, ImageRef], ...]:
    found = []
    for w, c in ctx.containers():
        image = c.image
        if image:
            found.append((w, c, parse_image(image)))
    return tuple(found)


@check(
    id="k8s.mutable-image-tag",
    title="Mutable image tag",
    practice="P17",
    severity=Severity.MEDIUM,
    reads=WORKLOAD_READS,
)
def mutable_image_tag(ctx: CheckContext) -> Iterator[Hit]:
    """The image has no tag or the tag `latest`, and no digest: what runs can change under the same name."""
    for w, c, ref in _images(ctx):
        if ref.digest is None and ref.tag in (None, "latest"):
            shown = "no tag" if ref.tag is None else "the tag 'latest'"
            msg = f"{container_label(c)} uses image {c.image!r} with {shown} and no digest ({c.path}.image)."
            yield workload_hit(w, msg, c)


@check(
    id="k8s.image-not-pinned",
    title="Image not pinned by digest",
    practice="P17",
    severity=Severity.INFO,
    reads=WORKLOAD_READS,
)
def image_not_pinned(ctx: CheckContext) -> Iterator[Hit]:
    """The image is referenced by a fixed tag (not `latest`) without a `@sha256:` digest."""
    for w, c, ref in _images(ctx):
        if ref.digest is None and ref.tag not in (None, "latest"):
            msg = f"{container_label(c)} uses image {c.image!r} by tag without a @sha256: digest ({c.path}.image)."
            yield workload_hit(w, msg, c)


def node_image_sizes(inventory: Inventory) -> Mapping[str, int]:
    """Image size in bytes by every name the nodes report (tag and digest forms, normalised)."""
    sizes: dict[str, int] = {}
    for node in inventory.of_kind("Node"):
        for image in (node.raw.get("status") or {}).get("images") or ():
            size = image.get("sizeBytes")
            if not isinstance(size, int):
                continue
            for name in image.get("names") or ():
                for key in _lookup_keys(str(name)):
                    sizes[key] = max(size, sizes.get(key, 0))
    return sizes


@functools.lru_cache(maxsize=65536)
def _lookup_keys(reference: str) -> tuple[str, ...]:
    ref = parse_image(reference)
    keys = []
    if ref.digest:
        keys.append(f"{ref.name}@{ref.digest}")
    if ref.tag or not ref.digest:
        keys.append(f"{ref.name}:{ref.tag or 'latest'}")
    return tuple(keys)


@check(
    id="k8s.large-image",
    title="Large container image",
    practice="P17",
    severity=Severity.LOW,
    reads=(*WORKLOAD_READS, "Node"),
    whole_cluster=True,
)
def large_image(ctx: CheckContext) -> Iterator[Hit]:
    """The image is larger than `max_image_size_mb` (default 500 MB), from the nodes'
    `status.images[].sizeBytes`; large images usually carry tools an attacker can use."""
    sizes = node_image_sizes(ctx.inventory)
    if not sizes:
        return
    limit = ctx.config.checks.max_image_size_mb * 1_000_000
    for w, c, _ in _images(ctx):
        size = max((sizes.get(key, 0) for key in _lookup_keys(c.image)), default=0)
        if size > limit:
            msg = f"{container_label(c)} uses image {c.image!r} of {size / 1e6:.0f} MB, over the {limit / 1e6:.0f} MB limit (Node status.images[].sizeBytes)."
            yield workload_hit(w, msg, c)


def _allowed(ref: ImageRef, allowed: tuple[str, ...]) -> bool:
    name = ref.name
    for entry in allowed:
        entry = entry.strip().rstrip("/").lower()
        if entry and (name == entry or name.startswith(entry + "/")):
            return True
    return False


@check(
    id="k8s.untrusted-registry",
    title="Image from an untrusted registry",
    practice="P17",
    severity=Severity.MEDIUM,
    reads=WORKLOAD_READS,
)
def untrusted_registry(ctx: CheckContext) -> Iterator[Hit]:
    """The image comes from a registry outside `allowed_registries` (entries are registries or
    registry/path prefixes; the check is off while the list is empty)."""
    allowed = ctx.config.checks.allowed_registries
    if not allowed:
        return
    for w, c, ref in _images(ctx):
        if not _allowed(ref, allowed):
            msg = f"{container_label(c)} pulls {c.image!r} from {ref.registry}, which is not in allowed_registries ({', '.join(allowed)})."
            yield workload_hit(w, msg, c)
