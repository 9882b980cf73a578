"""The seeded generator behind the synthetic cluster: sizes, name pools, images, certificates."""

from __future__ import annotations

import base64
import hashlib
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Doc = dict[str, Any]

REFERENCE_TIME = datetime(2026, 11, 27, tzinfo=UTC)
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# Sizes at scale 1.
NAMESPACES = 500
WORKLOADS = 10_000
RBAC_OBJECTS = 2_000
SECRETS = 5_000
CONFIG_MAPS = 1_000
NODES = 5
NETWORK_POLICY_SHARE = 0.6

WORKLOAD_MIX = {"Deployment": 55, "StatefulSet": 12, "DaemonSet": 3, "CronJob": 15, "Job": 15}
SECURITY_PROFILES = {"hardened": 70, "partial": 15, "unset": 10, "dangerous": 5}
TEAMS = [
    "payments",
    "cart",
    "search",
    "catalog",
    "billing",
    "identity",
    "ledger",
    "checkout",
    "orders",
    "shipping",
    "media",
    "ads",
    "fraud",
    "notify",
    "reports",
    "data",
    "ml",
    "edge",
]
APPS = [
    "api",
    "web",
    "worker",
    "gateway",
    "indexer",
    "sync",
    "scheduler",
    "cache",
    "consumer",
    "exporter",
    "proxy",
    "batch",
    "ingest",
    "renderer",
    "auth",
]
REGISTRIES = (
    "iad.ocir.io/shopco",
    "fra.ocir.io/shopco",
    "docker.io/library",
    "ghcr.io/acme",
    "quay.io/prometheus",
)
PLAIN_ENV = (
    "LOG_LEVEL",
    "PORT",
    "SERVICE_NAME",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "JAVA_OPTS",
    "REGION",
    "FEATURE_FLAGS",
    "CACHE_TTL_SECONDS",
    "GOMAXPROCS",
    "TZ",
)


def ts(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def b64(raw: bytes | str) -> str:
    return base64.b64encode(raw.encode() if isinstance(raw, str) else raw).decode()


@dataclass(frozen=True)
class Sizes:
    """How many objects of each group to generate."""

    namespaces: int
    workloads: int
    rbac: int
    secrets: int
    config_maps: int
    nodes: int = NODES

    @classmethod
    def at_scale(cls, scale: float) -> Sizes:
        def n(base: int) -> int:
            return max(1, round(base * scale))

        return cls(n(NAMESPACES), n(WORKLOADS), n(RBAC_OBJECTS), n(SECRETS), n(CONFIG_MAPS))


class Gen:
    """The seeded source of every random choice, plus the few things generated once."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.images = [self._image(i) for i in range(300)]
        self.certificates = [self._certificate(i) for i in range(8)]

    def pick(self, weights: dict[str, int]) -> str:
        return self.rng.choices(list(weights), list(weights.values()))[0]

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def suffix(self, length: int = 5) -> str:
        return "".join(self.rng.choices(SUFFIX_ALPHABET, k=length))

    def token(self, length: int) -> str:
        return "".join(
            self.rng.choices(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", k=length
            )
        )

    def created(self, max_days: int = 720) -> str:
        return ts(REFERENCE_TIME - timedelta(seconds=self.rng.randrange(3600, max_days * 86400)))

    def metadata(self, name: str, namespace: str | None, **extra: Any) -> Doc:
        meta: Doc = {"name": name}
        if namespace is not None:
            meta["namespace"] = namespace
        meta |= {
            "uid": self.uid(),
            "resourceVersion": str(self.rng.randrange(1_000, 90_000_000)),
            "creationTimestamp": self.created(),
        }
        return meta | {k: v for k, v in extra.items() if v}

    def _image(self, index: int) -> tuple[str, str, int]:
        registry = REGISTRIES[index % len(REGISTRIES)]
        repo = f"{registry}/{self.rng.choice(TEAMS)}-{self.rng.choice(APPS)}-{index}"
        tag = f"{self.rng.randrange(1, 5)}.{self.rng.randrange(0, 30)}.{self.rng.randrange(0, 12)}"
        size = int(self.rng.lognormvariate(18.5, 0.9))  # median ~110 MB, a tail past 500 MB
        return repo, tag, size

    def image_ref(self) -> str:
        repo, tag, _ = self.rng.choice(self.images)
        roll = self.rng.random()
        if roll < 0.40:
            return f"{repo}:{tag}@sha256:{hashlib.sha256(f'{repo}:{tag}'.encode()).hexdigest()}"
        if roll < 0.45:
            return f"{repo}:latest"
        if roll < 0.47:
            return repo
        return f"{repo}:{tag}"

    def _certificate(self, index: int) -> str:
        """A PEM server certificate; expiries spread from expired to two years away."""
        key = ec.derive_private_key(self.rng.randrange(1, P256_ORDER), ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"svc-{index}.shop.example")])
        end = REFERENCE_TIME + timedelta(days=(-20, 12, 45, 90, 200, 365, 400, 730)[index])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(self.rng.getrandbits(127) | 1)
            .not_valid_before(end - timedelta(days=397))
            .not_valid_after(end)
            .sign(key, hashes.SHA256(), ecdsa_deterministic=True)
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    def fake_private_key(self) -> str:
        body = b64(self.rng.randbytes(120))
        return f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"
