"""The ignore file: waivers kept in the repository for CI without an audit database.

``.okeguard-ignore.yaml`` (found by :func:`discover_ignore_file`) or a file named with
``--exceptions``::

    ignore:
      - check: k8s.run-as-root            # a check id (okeguard checks)
        resource: logging/fluent-bit      # namespace/name or Kind/namespace/name; '*' for any part
        cluster: shop-prod                # optional
        reason: reads /var/log on the node; SEC-1234
        expires: 2026-12-31               # the end of that day, UTC; at most 365 days ahead

``kind``, ``namespace`` and ``name`` may be given as keys instead of ``resource``, as with
``okeguard exceptions add`` (cluster-scoped objects need them). Parts match exactly, as a
recorded scan matches an exception. A file has no approver but git review, so every entry must
name a resource name or a cluster (one that names neither would waive its check everywhere,
like a fleet-wide exception, which needs an approver: turn such a check off with
``checks.disabled`` instead) and must expire, at most :data:`FILE_MAX_DAYS` ahead.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from okeguard.errors import ConfigError, OkeguardError, UsageError, one_line
from okeguard.scanning import validate_check_ids
from okeguard.waivers import Waiver, selector_part

if TYPE_CHECKING:
    import yaml

IGNORE_FILE_NAME = ".okeguard-ignore.yaml"
FILE_MAX_DAYS = 365  # a waiver in a reviewed file lasts at most a year
MAX_IGNORE_FILE_BYTES = 2**20
ENTRY_KEYS = ("check", "resource", "kind", "namespace", "name", "cluster", "reason", "expires")


class _Entry:
    """One entry of the ignore file while it is read: its key nodes, for errors naming lines."""

    def __init__(self, path: Path, node: yaml.MappingNode) -> None:
        import yaml

        self.path, self.line = path, node.start_mark.line + 1
        self.values: dict[str, tuple[int, Any]] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            line = key_node.start_mark.line + 1
            if key not in ENTRY_KEYS:
                close = difflib.get_close_matches(str(key), ENTRY_KEYS, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise self.error(
                    line, str(key), f"unknown key{hint}; expected {', '.join(ENTRY_KEYS)}"
                )
            if key in self.values:
                raise self.error(line, key, f"given twice in the entry of line {self.line}")
            if not isinstance(value_node, yaml.ScalarNode):
                raise self.error(line, key, "expected a single value, not a list or a mapping")
            try:
                value = yaml.SafeLoader("").construct_object(value_node)
            except (yaml.YAMLError, ValueError) as exc:  # a bad tag, a date like 2026-13-45
                problem = getattr(exc, "problem", None) or str(exc)
                raise self.error(line, key, f"cannot read the value: {problem}") from None
            self.values[key] = (line, value)

    def error(self, line: int, key: str, problem: str) -> ConfigError:
        return ConfigError(one_line(f"{self.path}:{line}: {key}: {problem}"))

    def text(self, key: str, *, required: bool = False) -> str | None:
        line, value = self.values.get(key, (self.line, None))
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise self.error(line, key, "required (an entry needs check, reason and expires)")
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.error(line, key, f"expected text, got {value!r}")
        return str(value).strip()

    def expiry(self, now: datetime, max_days: int) -> datetime:
        line, value = self.values.get("expires", (self.line, None))
        if value is None:
            raise self.error(line, "expires", f"required: a date at most {max_days} days away")
        when = _as_expiry(value)
        if when is None:
            raise self.error(line, "expires", f"expected a date like 2026-12-31, got {value!r}")
        latest = datetime.combine((now + timedelta(days=max_days)).date(), time.max, UTC)
        if when > latest:
            raise self.error(
                line,
                "expires",
                f"a waiver in a file lasts at most {max_days} days: choose a date by "
                f"{latest:%Y-%m-%d}",
            )
        return when

    def selector(self) -> tuple[str | None, str | None, str | None]:
        """(kind, namespace, name) from ``resource`` or from the separate keys."""
        separate = [key for key in ("kind", "namespace", "name") if key in self.values]
        resource = self.text("resource")
        if resource is None:
            return self.text("kind"), self.text("namespace"), self.text("name")
        line = self.values["resource"][0]
        if separate:
            raise self.error(line, "resource", f"give either resource or {separate[0]}, not both")
        parts = resource.split("/")
        if len(parts) not in (2, 3) or not all(part.strip() for part in parts):
            raise self.error(
                line,
                "resource",
                f"expected namespace/name or Kind/namespace/name ('*' for any part), got "
                f"'{resource}' (for a cluster-scoped object use kind and name)",
            )
        kind = parts[0].strip() if len(parts) == 3 else None
        return kind, parts[-2].strip(), parts[-1].strip()


def _as_expiry(value: object) -> datetime | None:
    """A date means the end of that day in UTC, as with ``okeguard exceptions add``."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time.max, UTC)
    return None


def _entry_waiver(entry: _Entry, now: datetime, max_days: int) -> Waiver:
    check_id = entry.text("check", required=True)
    assert check_id is not None
    try:
        validate_check_ids([check_id])
    except UsageError as exc:
        raise entry.error(entry.values["check"][0], "check", str(exc)) from None
    reason = entry.text("reason", required=True)
    assert reason is not None
    expires_at = entry.expiry(now, max_days)
    kind, namespace, name = entry.selector()
    waiver = Waiver(
        check_id,
        reason,
        expires_at,
        cluster=selector_part(entry.text("cluster")),
        kind=selector_part(kind),
        namespace=selector_part(namespace),
        name=selector_part(name),
        origin=f"{entry.path}:{entry.line}",
    )
    if waiver.fleet_wide:
        line = entry.values.get("resource", entry.values["check"])[0]
        raise entry.error(
            line,
            "resource",
            f"names neither a resource name nor a cluster, so it would waive {check_id} "
            "everywhere: name them, or turn the check off with checks.disabled in okeguard.yaml",
        )
    return waiver


def load_ignore_file(
    path: str | Path, *, now: datetime | None = None, max_days: int = FILE_MAX_DAYS
) -> list[Waiver]:
    """The waivers of an ignore file (``ignore:``, a list of entries: ``check``, ``resource``
    or ``kind``/``namespace``/``name``, optional ``cluster``, ``reason``, ``expires``).

    Raises :class:`~okeguard.errors.ConfigError` in one line naming the file, the line and the
    key for anything wrong: an unknown check id (with the closest one), a missing reason or
    expiry, an expiry more than ``max_days`` ahead, an entry that would waive a check
    everywhere. An entry already expired is kept: :func:`okeguard.waivers.apply_waivers` ignores
    it with a warning.
    """
    import yaml

    from okeguard.inventory.files import open_regular_file

    now = now or datetime.now(UTC)
    file = Path(path)
    try:
        with open_regular_file(file, what="YAML ignore file") as handle:
            raw = handle.read(MAX_IGNORE_FILE_BYTES + 1)
        if len(raw) > MAX_IGNORE_FILE_BYTES:
            raise ConfigError(f"{file}: larger than 1 MiB: not an ignore file")
        root = yaml.compose(raw.decode("utf-8"), Loader=yaml.SafeLoader)
    except OkeguardError as exc:
        raise ConfigError(str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(one_line(f"{file}: cannot read: {exc}")) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(one_line(f"{file}{where}: invalid YAML: {exc.problem}")) from None
    if root is None:
        return []
    listed = _ignore_list(file, root)
    waivers = []
    for node in listed:
        if not isinstance(node, yaml.MappingNode):
            raise ConfigError(
                f"{file}:{node.start_mark.line + 1}: ignore: each entry is a mapping "
                "(check, resource, reason, expires)"
            )
        waivers.append(_entry_waiver(_Entry(file, node), now, max_days))
    return waivers


def _ignore_list(file: Path, root: yaml.Node) -> list[yaml.Node]:
    import yaml

    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{file}:{root.start_mark.line + 1}: expected a mapping with 'ignore:'")
    listed: list[yaml.Node] = []
    for key_node, value_node in root.value:
        line = key_node.start_mark.line + 1
        if key_node.value != "ignore":
            raise ConfigError(
                one_line(f"{file}:{line}: {key_node.value}: unknown key; expected ignore")
            )
        if isinstance(value_node, yaml.SequenceNode):
            listed = list(value_node.value)
        elif not (isinstance(value_node, yaml.ScalarNode) and value_node.tag.endswith(":null")):
            raise ConfigError(f"{file}:{line}: ignore: expected a list of entries")
    return listed


def discover_ignore_file(paths: Iterable[str], cwd: Path | None = None) -> Path | None:
    """The ignore file a scan uses when none is named: ``.okeguard-ignore.yaml`` in the current
    directory, else in a scanned directory, else at the root of the git repository holding a
    scanned path (the nearest parent with ``.git``). None when there is none; ``-`` is skipped."""
    here = (cwd or Path.cwd()).resolve()
    candidates = [here]
    for text in paths:
        if text == "-":
            continue
        start = Path(text).resolve()
        start = start if start.is_dir() else start.parent
        candidates.append(start)
        root = next((p for p in (start, *start.parents) if (p / ".git").exists()), None)
        if root is not None:
            candidates.append(root)
    for directory in dict.fromkeys(candidates):
        found = directory / IGNORE_FILE_NAME
        if found.is_file():  # named relative to the current directory when inside it
            return found.relative_to(here) if found.is_relative_to(here) else found
    return None
