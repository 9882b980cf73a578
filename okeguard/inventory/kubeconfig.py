"""Reading kubeconfig files: which contexts exist, where they point, and how each user authenticates.

Files are merged the way kubectl merges ``$KUBECONFIG``: for clusters, contexts and users the
first file that names an entry wins, and ``current-context`` comes from the first file that sets
one. Credential values (tokens, passwords, keys, exec environment) are read only to learn which
mechanisms are present; nothing returned here holds them.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from okeguard.errors import ClusterAccessError, InputError
from okeguard.inventory.files import open_regular_file
from okeguard.inventory.model import KubeconfigUser
from okeguard.inventory.sensitive import classify_key_material, looks_like_credential_name, marker

DEFAULT_KUBECONFIG = "~/.kube/config"
MAX_KUBECONFIG_BYTES = 64 * 2**20  # kubeconfigs with many clusters run to a few MiB

try:  # the C loader is much faster; fall back when libyaml is missing
    _Loader: type[Any] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Loader = yaml.SafeLoader


@dataclass(frozen=True)
class Kubeconfig:
    """The merged view of one or more kubeconfig files, without any credential values.

    ``contexts`` maps a context name to its (cluster, user) names; ``servers`` maps a cluster
    name to its API server URL; ``users`` says how each user authenticates.
    """

    paths: tuple[Path, ...]
    current_context: str | None
    contexts: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    servers: Mapping[str, str] = field(default_factory=dict)
    users: tuple[KubeconfigUser, ...] = ()

    @property
    def label(self) -> str:
        """The file (or ``:``-joined files) for messages and for the Kubernetes client."""
        return os.pathsep.join(str(p) for p in self.paths)

    def user(self, name: str | None) -> KubeconfigUser | None:
        """The user entry called ``name``, if any."""
        return next((u for u in self.users if u.name == name), None)


def kubeconfig_candidates(path: str | None = None) -> tuple[list[Path], bool]:
    """The files to read and whether they were named explicitly (``path``) rather than found.

    ``path`` is one file; otherwise ``$KUBECONFIG`` (a ``os.pathsep``-separated list) or
    ``~/.kube/config``.
    """
    if path is not None:
        return [Path(path).expanduser()], True
    env = os.environ.get("KUBECONFIG", "")
    entries = [entry for entry in env.split(os.pathsep) if entry] if env else []
    if not entries:
        entries = [DEFAULT_KUBECONFIG]
    return [Path(entry).expanduser() for entry in entries], False


def _parse(file: Path) -> Mapping[str, Any]:
    try:
        # regular files only: a FIFO would block and /dev/zero would be read for ever
        with open_regular_file(file, what="kubeconfig file") as handle:
            raw = handle.read(MAX_KUBECONFIG_BYTES + 1)
        if len(raw) > MAX_KUBECONFIG_BYTES:
            raise InputError(f"{file}: larger than 64 MiB: not a kubeconfig file")
        text = raw.decode("utf-8")
    except IsADirectoryError:
        raise InputError(f"{file}: is a directory, expected a kubeconfig file") from None
    except PermissionError:
        raise InputError(f"{file}: permission denied") from None
    except UnicodeDecodeError:
        raise InputError(f"{file}: not a text file (not UTF-8)") from None
    except OSError as exc:
        raise InputError(f"{file}: cannot read: {exc.strerror}") from None
    try:
        doc = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "syntax error"
        raise InputError(f"{file}{line}: invalid YAML in kubeconfig: {problem}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{file}: invalid YAML in kubeconfig: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise InputError(f"{file}: not a kubeconfig (expected a mapping, got {type(doc).__name__})")
    return doc


def _named_entries(
    doc: Mapping[str, Any], key: str, file: Path
) -> list[tuple[str, Mapping[str, Any]]]:
    entries = doc.get(key)
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise InputError(f"{file}: not a kubeconfig ('{key}' must be a list)")
    out = []
    for entry in entries:
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            body = entry.get(key[:-1])  # clusters[].cluster, contexts[].context, users[].user
            out.append((entry["name"], body if isinstance(body, Mapping) else {}))
    return out


def _redact_args(args: Sequence[object]) -> tuple[str, ...]:
    """Exec plugin arguments, with any that look like a credential replaced by a marker."""
    out: list[str] = []
    secret_flag = False
    for raw in args:
        arg = str(raw)
        flag, eq, value = arg.partition("=")
        if secret_flag and not arg.startswith("-"):
            out.append(marker("credential", arg))
        elif arg.startswith("-") and eq and looks_like_credential_name(flag.lstrip("-")):
            out.append(f"{flag}={marker('credential', value)}")
        elif classify_key_material(arg):
            out.append(marker(classify_key_material(arg) or "credential", arg))
        else:
            out.append(arg)
        secret_flag = arg.startswith("-") and not eq and looks_like_credential_name(arg.lstrip("-"))
    return tuple(out)


def user_auth(name: str, user: Mapping[str, Any]) -> KubeconfigUser:
    """How the kubeconfig user ``name`` authenticates: the mechanisms present, never their values."""
    auth: list[str] = []
    exec_command: str | None = None
    exec_args: tuple[str, ...] = ()
    exec_spec = user.get("exec")
    if isinstance(exec_spec, Mapping):
        auth.append("exec")
        command = exec_spec.get("command")
        exec_command = str(command) if command is not None else None
        args = exec_spec.get("args")
        exec_args = _redact_args(args) if isinstance(args, list) else ()
    if user.get("token"):
        auth.append("token")
    if user.get("tokenFile"):
        auth.append("token-file")
    if user.get("password"):
        auth.append("password")
    if user.get("client-key") or user.get("client-key-data"):
        auth.append("client-key")
    if isinstance(user.get("auth-provider"), Mapping):
        auth.append("auth-provider")
    return KubeconfigUser(
        name=name, auth=tuple(auth), exec_command=exec_command, exec_args=exec_args
    )


def load_kubeconfig(path: str | None = None) -> Kubeconfig:
    """Read and merge the kubeconfig (``path``, else ``$KUBECONFIG``, else ``~/.kube/config``).

    Files that do not exist are skipped unless ``path`` names one explicitly, in which case
    :class:`InputError` is raised; when none exist the result has no paths and no contexts.
    Invalid YAML raises :class:`InputError` naming the file and line.
    """
    candidates, explicit = kubeconfig_candidates(path)
    paths: list[Path] = []
    current: str | None = None
    contexts: dict[str, tuple[str, str | None]] = {}
    servers: dict[str, str] = {}
    users: dict[str, KubeconfigUser] = {}
    for file in candidates:
        if not file.exists():
            if explicit:
                raise InputError(f"{file}: no such file or directory")
            continue
        doc = _parse(file)
        paths.append(file)
        if current is None and isinstance(doc.get("current-context"), str):
            current = doc["current-context"] or None
        for name, body in _named_entries(doc, "contexts", file):
            user = body.get("user")
            contexts.setdefault(
                name, (str(body.get("cluster") or ""), str(user) if user is not None else None)
            )
        for name, body in _named_entries(doc, "clusters", file):
            servers.setdefault(name, str(body.get("server") or ""))
        for name, body in _named_entries(doc, "users", file):
            if name not in users:
                users[name] = user_auth(name, body)
    return Kubeconfig(tuple(paths), current, contexts, servers, tuple(users.values()))


def read_kubeconfig_users(path: str | None = None) -> list[KubeconfigUser]:
    """For each ``users[]`` entry of the kubeconfig, the auth mechanisms it uses (no values).

    Reads ``path``, else ``$KUBECONFIG`` (merged), else ``~/.kube/config``. A missing file gives
    an empty list unless ``path`` was given; an explicit missing path or invalid YAML raises
    :class:`InputError` naming the file (and line).
    """
    return list(load_kubeconfig(path).users)


def resolve_context(kubeconfig: str | None, context: str | None) -> tuple[Kubeconfig, str]:
    """The merged kubeconfig and the context to use (``context``, else the current one).

    Raises :class:`ClusterAccessError` with one line when the file is missing, no context is
    selected, or the context does not exist (listing the available ones, with a "did you mean").
    """
    if kubeconfig is not None and not Path(kubeconfig).expanduser().exists():
        raise ClusterAccessError(f"kubeconfig {kubeconfig}: no such file")
    config = load_kubeconfig(kubeconfig)
    if not config.paths:
        looked_at = ", ".join(str(p) for p in kubeconfig_candidates(kubeconfig)[0])
        raise ClusterAccessError(
            f"no kubeconfig found (looked at {looked_at}); pass --kubeconfig or set KUBECONFIG "
            "(for OKE, create one with `oci ce cluster create-kubeconfig`)"
        )
    names = sorted(config.contexts)
    available = ", ".join(names) if names else "none"
    name = context or config.current_context
    if name is None:
        raise ClusterAccessError(
            f"kubeconfig {config.label} sets no current-context; pass --context "
            f"(available: {available})"
        )
    if name not in config.contexts:
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ClusterAccessError(
            f"kubeconfig {config.label}: no context named '{name}'{hint} (available: {available})"
        )
    return config, name
