"""Certificates for the demo's TLS Secrets: a CA and the server certificates it signs.

Keys are derived from the demo's seeded RNG and signed with deterministic ECDSA (RFC 6979), so a
regenerated snapshot holds byte-identical certificates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@dataclass(frozen=True)
class Issued:
    cert_pem: str
    key_pem: str
    key: ec.EllipticCurvePrivateKey
    name: x509.Name


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        parts.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(parts)


def _sign(builder: x509.CertificateBuilder, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    try:  # deterministic ECDSA (RFC 6979) keeps regenerated certificates byte-identical
        return builder.sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    except TypeError:  # older cryptography: still valid, just not reproducible
        return builder.sign(key, hashes.SHA256())


class Certificates:
    """An issuing CA and the certificates it signs, all from seeded keys."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def _key(self) -> ec.EllipticCurvePrivateKey:
        return ec.derive_private_key(self.rng.randrange(1, P256_ORDER), ec.SECP256R1())

    def _pem(
        self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, name: x509.Name
    ) -> Issued:
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        return Issued(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem, key, name)

    def authority(
        self, common_name: str, organization: str, start: datetime, end: datetime
    ) -> Issued:
        key = self._key()
        name = _name(common_name, organization)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(self.rng.getrandbits(127) | 1)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
        )
        return self._pem(_sign(builder, key), key, name)

    def server(self, issuer: Issued, hosts: list[str], start: datetime, end: datetime) -> Issued:
        """A TLS server certificate for ``hosts`` (the first is the CN), signed by ``issuer``."""
        key = self._key()
        name = _name(hosts[0])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer.name)
            .public_key(key.public_key())
            .serial_number(self.rng.getrandbits(127) | 1)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                critical=False,
            )
        )
        return self._pem(_sign(builder, issuer.key), key, name)

    def openssh_key(self) -> str:
        """An OpenSSH Ed25519 private key (as someone would paste it into a ConfigMap)."""
        key = ed25519.Ed25519PrivateKey.from_private_bytes(self.rng.randbytes(32))
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ).decode()
        return pem
