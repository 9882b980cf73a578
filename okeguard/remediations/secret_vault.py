"""OCI Vault and mirror helpers of ``rotate-secret``: SDK calls with their failures mapped to
:class:`~okeguard.remediations.engine.StepFailed`, secret bundles, and content generation.

Content (a generated value or a bundle) is returned to the caller, which writes it at once and
drops it; nothing here logs it, puts it in a message or keeps it.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from collections.abc import Callable, Mapping
from typing import Any

from okeguard.remediations.engine import Backends, StepFailed
from okeguard.remediations.kube_writer import MERGE_PATCH, KubeWriter

# One per value of ``RemediationConfig.secret_alphabet`` (the ``okeguard-alphabet`` tag's values).
ALPHABETS: Mapping[str, str] = {
    "alphanumeric": string.ascii_letters + string.digits,
    "alphanumeric-symbols": string.ascii_letters + string.digits + "!#%+,-.:=@^_~",
    "hex": "0123456789abcdef",
    "base64url": string.ascii_letters + string.digits + "-_",
}
VERSION_ANNOTATION = "okeguard.io/vault-secret-version"
ROTATED_BY = "okeguard.io/rotated-by"
ROTATED_AT = "okeguard.io/rotated-at"
RESTART_TOKEN = "okeguard.io/restart-token"
REFRESHED_BY = "okeguard.io/refreshed-by"
# What a mirror sync writes besides the data, and its undo puts back exactly as it was.
MIRROR_ANNOTATIONS = (VERSION_ANNOTATION, ROTATED_AT, ROTATED_BY)
REFUSED = frozenset({400, 401, 403, 404, 409, 412, 422})


def generate_content(length: int, alphabet: str) -> str:
    """``length`` characters drawn with :mod:`secrets` from the named alphabet."""
    chars = ALPHABETS[alphabet]
    return "".join(secrets.choice(chars) for _ in range(length))


def ann_path(key: str) -> str:
    return "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")


def data_path(key: str) -> str:
    return "/data/" + key.replace("~", "~0").replace("/", "~1")


# -- OCI access ------------------------------------------------------------------------------
def oci_client(backends: Backends, kind: str) -> Any:
    if backends.oci is None:
        raise StepFailed("this plan writes to OCI Vault, but no OCI connection was given")
    return backends.oci.clients[kind]


def oci_call(what: str, call: Callable[..., Any], *args: Any, write: bool, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, its failures as :class:`StepFailed` (a refusal wrote nothing;
    a timeout or a 5xx of a write may have landed). Messages name the call, never a body."""
    import oci

    try:
        return call(*args, **kwargs)
    except oci.exceptions.ServiceError as exc:
        refused = exc.status in REFUSED
        raise StepFailed(
            f"OCI {what} was refused ({exc.status} {exc.code}: {exc.message})"
            if refused
            else f"OCI {what} failed ({exc.status} {exc.code})",
            wrote_nothing=refused or not write,
        ) from None
    except Exception as exc:  # connection errors and timeouts: the outcome is unknown
        raise StepFailed(
            f"OCI {what} failed: {type(exc).__name__}", wrote_nothing=not write
        ) from None


def vault_secret(backends: Backends, secret_id: str) -> tuple[Any, str]:
    """(the secret's metadata, its etag)."""
    vaults = oci_client(backends, "vaults")
    response = oci_call("get_secret", vaults.get_secret, secret_id, write=False)
    return response.data, str(response.headers.get("etag") or "")


def vault_versions(backends: Backends, secret_id: str) -> list[Any]:
    import oci

    vaults = oci_client(backends, "vaults")
    response = oci_call(
        "list_secret_versions",
        oci.pagination.list_call_get_all_results,
        vaults.list_secret_versions,
        secret_id,
        write=False,
    )
    return list(response.data)


def previous_version(backends: Backends, secret_id: str) -> int | None:
    """The version that was CURRENT before the current one (stage PREVIOUS)."""
    for version in vault_versions(backends, secret_id):
        if "PREVIOUS" in (version.stages or ()):
            return int(version.version_number)
    return None


def bundle_content(backends: Backends, secret_id: str, version: int) -> str:
    """The base64 content of one version. Callers use it at once and drop it."""
    secrets_client = oci_client(backends, "secrets")
    response = oci_call(
        f"get_secret_bundle (version {version})",
        secrets_client.get_secret_bundle,
        secret_id,
        version_number=version,
        write=False,
    )
    return str(response.data.secret_bundle_content.content)


def version_named(backends: Backends, secret_id: str, name: str) -> int | None:
    """The number of the version called ``name`` (None if there is none), asked of the secret
    bundles: version summaries name it too, but not every server fills that in."""
    import oci

    secrets_client = oci_client(backends, "secrets")
    try:
        response = secrets_client.get_secret_bundle(secret_id, secret_version_name=name)
    except oci.exceptions.ServiceError as exc:
        if exc.status == 404:
            return None
        raise StepFailed(f"OCI get_secret_bundle failed ({exc.status} {exc.code})") from None
    except Exception as exc:
        raise StepFailed(f"OCI get_secret_bundle failed: {type(exc).__name__}") from None
    number = int(response.data.version_number)
    del response  # it carries the content
    return number


def digest(value: object) -> str:
    return hashlib.sha256(str(value).encode()).hexdigest()


def kube(backends: Backends) -> KubeWriter:
    if backends.kube is None:
        raise StepFailed("this plan writes to Kubernetes, but no cluster connection was given")
    writer: KubeWriter = backends.kube
    return writer


def where(ref: Mapping[str, Any]) -> tuple[str, str | None, str]:
    return str(ref["kind"]), ref.get("namespace"), str(ref["name"])


def now_text() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def restart_workloads(backends: Backends, workloads: list[Mapping[str, Any]], token: str) -> None:
    """Rollout restart (not watched): used by undos once the previous content is back."""
    for ref in workloads:
        kind, namespace, name = where(ref)
        annotations = {
            "kubectl.kubernetes.io/restartedAt": now_text(),
            RESTART_TOKEN: f"{token}-undo",
        }
        patch = {"spec": {"template": {"metadata": {"annotations": annotations}}}}
        kube(backends).patch(kind, namespace, name, patch, content_type=MERGE_PATCH)


def mirror_matches(
    backends: Backends, secret: Mapping[str, Any], secret_id: str, version: int
) -> bool:
    """Whether the Secret's data key holds exactly version ``version`` (compared by digest)."""
    kind, namespace, name = where(secret)
    doc = kube(backends).get(kind, namespace, name) or {}
    live = digest((doc.get("data") or {}).get(str(secret["key"])))
    del doc
    return live == digest(bundle_content(backends, secret_id, version))


def refresh_external_secret(
    backends: Backends, ref: Mapping[str, Any], token: str
) -> dict[str, Any]:
    kind, namespace, name = where(ref)
    annotations = {"force-sync": str(int(time.time())), REFRESHED_BY: token}
    doc = kube(backends).patch(
        kind, namespace, name, {"metadata": {"annotations": annotations}}, content_type=MERGE_PATCH
    )
    return doc


def wait_for_mirror(
    backends: Backends, secret: Mapping[str, Any], secret_id: str, version: int
) -> str:
    def probe() -> tuple[bool, str]:
        done = mirror_matches(backends, secret, secret_id, version)
        return done, f"Secret {secret['namespace']}/{secret['name']} " + (
            f"holds version {version}" if done else f"does not hold version {version} yet"
        )

    what = f"the refresh of Secret {secret['namespace']}/{secret['name']}"
    return backends.wait_until(what, probe, backends.settings.rollout_timeout_seconds)
