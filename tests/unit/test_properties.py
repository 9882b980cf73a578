"""Property-based tests of the parsers and matchers every check leans on."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from okeguard.checks.images import parse_image
from okeguard.checks.network import selector_matches
from okeguard.inventory.model import effective_security_context
from okeguard.inventory.sensitive import key_format_of, marker, marker_label

component = st.from_regex(r"[a-z0-9]+(?:[._-][a-z0-9]+){0,2}", fullmatch=True)
registries = st.one_of(
    st.builds(lambda a, b: f"{a}.{b}", component, st.sampled_from(["io", "com", "example"])),
    st.builds(
        lambda h, p: f"{h}:{p}",
        st.sampled_from(["localhost", "registry.local"]),
        st.integers(1, 65535),
    ),
)
tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
digests = st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True)


@given(
    registries, st.lists(component, min_size=1, max_size=3), st.none() | tags, st.none() | digests
)
def test_parse_image_recovers_every_part(
    registry: str, path: list[str], tag: str | None, digest: str | None
) -> None:
    reference = (
        f"{registry}/{'/'.join(path)}"
        + (f":{tag}" if tag else "")
        + (f"@{digest}" if digest else "")
    )
    ref = parse_image(reference)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry.lower(),
        "/".join(path),
        tag,
        digest,
    )


@given(component, st.none() | tags)
def test_docker_hub_short_names_normalise(name: str, tag: str | None) -> None:
    short = parse_image(name + (f":{tag}" if tag else ""))
    long = parse_image(f"docker.io/library/{name}" + (f":{tag}" if tag else ""))
    assert short == long
    assert short.name == f"docker.io/library/{name}"


labels = st.dictionaries(st.sampled_from("abcde"), st.sampled_from(["x", "y", "z"]), max_size=5)


@given(labels, labels)
def test_match_labels_is_a_subset_test(selector: dict[str, str], pod: dict[str, str]) -> None:
    assert selector_matches({"matchLabels": selector}, pod) == (selector.items() <= pod.items())


@given(st.sampled_from("abc"), st.lists(st.sampled_from(["x", "y", "z"]), min_size=1), labels)
def test_in_and_notin_are_complements_when_the_key_exists(
    key: str, values: list[str], pod: dict[str, str]
) -> None:
    inside = selector_matches(
        {"matchExpressions": [{"key": key, "operator": "In", "values": values}]}, pod
    )
    outside = selector_matches(
        {"matchExpressions": [{"key": key, "operator": "NotIn", "values": values}]}, pod
    )
    if key in pod:
        assert inside != outside
    else:
        assert (inside, outside) == (False, True)


optional_user = st.none() | st.integers(0, 70000)
optional_bool = st.none() | st.booleans()


@given(optional_user, optional_user, optional_bool, optional_bool)
def test_container_settings_override_pod_settings(
    pod_user: int | None,
    container_user: int | None,
    pod_nonroot: bool | None,
    container_nonroot: bool | None,
) -> None:
    pod = {
        k: v
        for k, v in {"runAsUser": pod_user, "runAsNonRoot": pod_nonroot}.items()
        if v is not None
    }
    own = {
        k: v
        for k, v in {"runAsUser": container_user, "runAsNonRoot": container_nonroot}.items()
        if v is not None
    }
    sc = effective_security_context({"securityContext": pod}, {"securityContext": own})
    assert sc.run_as_user == (container_user if container_user is not None else pod_user)
    assert sc.run_as_non_root == (
        container_nonroot if container_nonroot is not None else pod_nonroot
    )


@given(
    st.sampled_from(["secret", "credential", "pem-private-key", "aws-access-key-id"]),
    st.text(max_size=200),
)
def test_markers_keep_the_label_and_length_only(label: str, value: str) -> None:
    text = marker(label, value)
    assert marker_label(text) == label
    assert text == f"okeguard:redacted:{label}:{len(value)}"  # nothing of the value itself
    assert key_format_of(text) == (
        label if label in ("pem-private-key", "aws-access-key-id") else None
    )
