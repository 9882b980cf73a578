"""Recognising credentials, and replacing their values before anything else sees them.

Every object okeguard reads passes through :mod:`okeguard.inventory.normalize`, which uses the
functions here to swap sensitive values for a *marker* such as
``okeguard:redacted:pem-private-key:1704``. The marker keeps what the checks need (what kind of
value it was and how long) and nothing that could leak the value itself, so snapshots, findings,
logs and the database never hold a secret.
"""

from __future__ import annotations

import re

MARKER_PREFIX = "okeguard:redacted:"

# Known formats of key material; the label names the format in findings and markers.
_KEY_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "pem-private-key",
        re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    ),
    ("aws-access-key-id", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b")),
    (
        "oci-api-key-id",
        re.compile(
            r"ocid1\.tenancy\.[a-z0-9.-]*\.\.[a-z0-9]+/ocid1\.user\.[a-z0-9.-]*\.\.[a-z0-9]+/"
            r"(?:[0-9a-f]{2}:){15}[0-9a-f]{2}"
        ),
    ),
    ("github-token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("slack-token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
)

KEY_FORMAT_LABELS = frozenset(label for label, _ in _KEY_FORMATS)

# Words that make an environment variable name look like it holds a credential.
_CREDENTIAL_WORDS = re.compile(
    r"(PASSWORD|PASSWD|PASSPHRASE|(?:^|_)PWD(?:_|$)|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|"
    r"ACCESS_?KEY|CREDENTIALS?|AUTH_?KEY|SIGNING_?KEY|ENCRYPTION_?KEY|MASTER_?KEY)"
)
# Suffixes that say the variable holds a reference to a credential, not the credential itself.
_REFERENCE_SUFFIX = re.compile(
    r"_(FILE|PATH|DIR|URL|URI|ENDPOINT|NAME|REF|KIND|TYPE|TTL|TIMEOUT|EXPIRY|EXPIRES|LENGTH|"
    r"LEN|HEADER|ENABLED|REQUIRED|ROTATION|VERSION|MOUNT|KEY_ID_FILE)$"
)


# One pass over a value finds any of the formats; the group that matched names it.
_ANY_KEY_FORMAT = re.compile(
    "|".join(f"(?P<f{i}>{pattern.pattern})" for i, (_, pattern) in enumerate(_KEY_FORMATS))
)
_LABEL_OF_GROUP = {f"f{i}": label for i, (label, _) in enumerate(_KEY_FORMATS)}
_EMBEDDED_MARKER = re.compile(re.escape(MARKER_PREFIX) + r"([a-z0-9-]+):[0-9]+")
# What a value that only refers to a credential looks like: ``$(DB_PASSWORD)`` (expanded by the
# kubelet in command, args and env), ``${DB_PASSWORD}``, ``{{ .Values.password }}``.
_PLACEHOLDER = re.compile(r"\$\([A-Za-z_]\w*\)|\$\{[A-Za-z_][\w.]*\}|\{\{[^{}]*\}\}")


# A literal that each format above must contain. Searching for these first is several times
# faster than the formats' own pattern, whose leading ``\b`` defeats the regex engine's scan for
# a first character; only the rare value holding one is searched again in full.
_KEY_FORMAT_HINT = re.compile(
    r"PRIVATE KEY|A(?:KIA|SIA|GPA|IDA|ROA|Iza)|ocid1\.tenancy\.|gh[pousr]_|xox[abposr]-"
)


def classify_key_material(value: str) -> str | None:
    """Return the label of the known key format found in ``value`` (e.g. ``pem-private-key``), or None."""
    if len(value) < 16 or _KEY_FORMAT_HINT.search(value) is None:
        return None
    found = _ANY_KEY_FORMAT.search(value)
    return _LABEL_OF_GROUP[str(found.lastgroup)] if found else None


def looks_like_credential_name(name: str) -> bool:
    """True when an env var name such as ``DB_PASSWORD`` or ``STRIPE_API_KEY`` suggests a credential."""
    known = _NAME_VERDICTS.get(name)
    if known is None:
        upper = name.upper().replace("-", "_").replace(".", "_")
        known = bool(_CREDENTIAL_WORDS.search(upper)) and not _REFERENCE_SUFFIX.search(upper)
        if len(_NAME_VERDICTS) >= 20_000:
            _NAME_VERDICTS.clear()
        _NAME_VERDICTS[name] = known
    return known


# Verdicts on names already judged: a cluster repeats the same env var names thousands of times.
_NAME_VERDICTS: dict[str, bool] = {}


def marker(label: str, value: str | bytes) -> str:
    """The redaction marker that replaces ``value``: its label and length, nothing of its content."""
    return f"{MARKER_PREFIX}{label}:{len(value)}"


def marker_label(value: object) -> str | None:
    """The label of a redaction marker (``secret``, ``credential``, ``pem-private-key``…), or None."""
    if isinstance(value, str) and value.startswith(MARKER_PREFIX):
        return value[len(MARKER_PREFIX) :].rsplit(":", 1)[0]
    return None


def key_format_of(value: object) -> str | None:
    """The key format of a value that may already be redacted: the marker's label, or a fresh match."""
    label = marker_label(value)
    if label is not None:
        return label if label in KEY_FORMAT_LABELS else None
    return classify_key_material(value) if isinstance(value, str) else None


# Fields whose values may be credentials: a message about one of them (a wrong type, a value
# YAML cannot build) names the field and the type, never the value.
_CREDENTIAL_FIELDS = frozenset(
    {"env", "data", "stringData", "binaryData", "annotations", "args", "command", "httpHeaders"}
)
_PATH_PARTS = re.compile(r"[.\[\]]+")


def may_hold_credential(path: str) -> bool:
    """True when the field at ``path`` (``spec.template.spec.containers[0].env[1].value``,
    ``data.password``, ``metadata.annotations.x``) may hold a credential, so that a message
    about it must not quote its value."""
    return any(part in _CREDENTIAL_FIELDS for part in _PATH_PARTS.split(path))


def redacted_labels(value: object) -> tuple[str, ...]:
    """The labels of every marker in ``value``, whole or embedded (``postgres://u:<marker>@h``)."""
    return tuple(_EMBEDDED_MARKER.findall(value)) if isinstance(value, str) else ()


def _is_kept(value: str) -> bool:
    """True for a value that needs no marker: empty, already a marker, or a reference."""
    return not value or value.startswith(MARKER_PREFIX) or bool(_PLACEHOLDER.fullmatch(value))


def redact_value(value: str) -> str:
    """``value`` as a ``credential`` marker, unless it is empty, already a marker or a reference."""
    return value if _is_kept(value) else marker("credential", value)


def _unquoted(value: str) -> str:
    """``value`` with its credential replaced, keeping one pair of surrounding quotes."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[0] + redact_value(value[1:-1]) + value[0]
    return redact_value(value)


# ---------------------------------------------------------------- URLs

_URL = re.compile(r"""(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://(?P<rest>[^\s"'<>`]*)""")
_HOST = re.compile(r"[\w.\-\[\]:%]+(?:[/?#]|$)")


def _password_span(rest: str) -> tuple[int, int] | None:
    """Where the password of ``user:password@host…`` (the part after ``://``) lies, or None.

    The password runs to the last ``@`` before the path, so it may hold ``@`` and ``:``. A
    password holding an unencoded ``/``, ``?`` or ``#`` ends at the first ``@`` followed by a
    host, unless the text before that ``/`` is a port (``host:8080/p@x`` has no password).
    """
    colon = rest.find(":")
    if colon < 0 or any(c in rest[:colon] for c in "/?#@"):
        return None
    if any(m.start() <= colon < m.end() for m in _EMBEDDED_MARKER.finditer(rest)):
        return None  # the colon of a marker another rule left here, not a password's
    start = colon + 1
    stop = next((i for i in range(start, len(rest)) if rest[i] in "/?#"), len(rest))
    at = rest.rfind("@", start, stop)
    if at >= 0:
        return start, at
    if stop == len(rest) or rest[start:stop].isdigit() or start == stop:
        return None
    at = rest.find("@", stop)
    return (start, at) if at >= 0 and _HOST.match(rest, at + 1) else None


def _redact_url(found: re.Match[str]) -> str:
    text = found.group(0)
    offset = found.start("rest") - found.start()
    span = _password_span(found.group("rest"))
    if span is None:
        # a URL nested further on (``a://h1,b://u:p@h2``) is still looked at
        return text[:offset] + _URL.sub(_redact_url, text[offset:])
    start, end = offset + span[0], offset + span[1]
    tail = _URL.sub(_redact_url, text[end:])
    password = text[start:end]
    return text[:start] + (password if MARKER_PREFIX in password else redact_value(password)) + tail


# ---------------------------------------------------------------- key = value forms

# ``--password=x``, ``--token x``, ``-Ddb.password=x``, ``-p=x`` inside a string
_INLINE_FLAG = re.compile(
    r"""(?<![\w-])(?P<flag>--?[A-Za-z][\w.-]*)"""
    r"""(?:=(?P<eq>"[^"]*"|'[^']*'|[^\s"']+)|[ \t]+(?P<sp>(?!-)(?:"[^"]*"|'[^']*'|[^\s"']+)))"""
)
# ``password=x`` anywhere: URL queries (``?token=x``), JDBC strings (``;password=x``), and
# text such as ``kubectl create secret … --from-literal=password=x``
_ASSIGNMENT = re.compile(
    r"""(?<![\w.-])(?P<name>[A-Za-z_][\w.\-]*)=(?P<value>"[^"]*"|'[^']*'|[^\s"'&;#]+)"""
)
# ``"password": "x"`` anywhere (JSON, also minified on one line)
_JSON_PAIR = re.compile(
    r'"(?P<name>[A-Za-z_][\w.\-]*)"(?P<sep>\s*:\s*)"(?P<value>(?:[^"\\]|\\.)*)"'
)
# the same inside a JSON string that holds JSON (``"{\\"password\\":\\"x\\"}"``)
_ESCAPED_JSON_PAIR = re.compile(
    r'\\"(?P<name>[A-Za-z_][\w.\-]*)\\"(?P<sep>\s*:\s*)\\"(?P<value>(?:(?!\\").)*)\\"'
)
# a credential header in text: ``Authorization: Bearer x``, nginx's
# ``proxy_set_header Authorization "Basic x";``, ``curl -H 'X-Api-Key: x'``
_HEADER_IN_TEXT = re.compile(
    r"""(?i)(?P<head>\b(?:proxy-)?authorization|\bx-api-key|\bcookie)"""
    r"""(?P<sep>["']?[ \t]*[:=][ \t]*["']?(?:(?:basic|bearer|token|digest|apikey)[ \t]+)?"""
    r"""|[ \t]+["']?(?:basic|bearer|token|digest|apikey)[ \t]+)(?P<value>[^\s"';,]+)"""
)
# a properties, .env, YAML, INI or TOML line: ``db.password=x``, ``export API_KEY=x``,
# ``  password: x``, ``secret = "x"``
_PROPERTY_LINE = re.compile(
    r"""^(?P<head>[ \t]*(?:export[ \t]+)?(?P<q>["']?)(?P<name>[A-Za-z_][\w.\-]*)(?P=q)"""
    r"""[ \t]*[=:][ \t]*)(?P<value>\S.*?)(?P<tail>[ \t]*,?[ \t]*\r?)$""",
    re.MULTILINE,
)


def _may_name_credential(text: str) -> bool:
    """False when ``text`` holds no credential-like name (see ``_CREDENTIAL_WORDS``), no
    credential header and no ``-p=``, so that the name-based rules cannot apply to it."""
    low = text.lower()  # plain ``in`` tests: several times faster than one regex or any()
    return (
        "pass" in low
        or "secret" in low
        or "token" in low
        or "key" in low
        or "pwd" in low
        or "credential" in low
        or "authoriz" in low
        or "cookie" in low
        or "-p=" in low
    )


_BLOCK_SCALAR = re.compile(r"[|>][0-9+-]*")


def is_credential_flag(arg: str) -> bool:
    """True for a command-line flag such as ``--password`` or ``--api-key`` (not ``--password-file``)."""
    return arg.startswith("-") and looks_like_credential_name(arg.lstrip("-"))


def _redact_flag(found: re.Match[str]) -> str:
    flag, value = found.group("flag"), found.group("eq")
    if value is not None:
        secret = looks_like_credential_name(flag.lstrip("-")) or flag == "-p"
        return f"{flag}={_unquoted(value)}" if secret else found.group(0)
    if not is_credential_flag(flag):
        return found.group(0)
    space = found.group(0)[len(flag) : found.start("sp") - found.start()]
    return flag + space + _unquoted(found.group("sp"))


def _redact_header_in_text(found: re.Match[str]) -> str:
    return found.group("head") + found.group("sep") + redact_value(found.group("value"))


def _redact_assignment(found: re.Match[str]) -> str:
    if not looks_like_credential_name(found.group("name")):
        return found.group(0)
    return f"{found.group('name')}={_unquoted(found.group('value'))}"


def _redact_json_pair(found: re.Match[str]) -> str:
    if not looks_like_credential_name(found.group("name")):
        return found.group(0)
    start, end = found.span("value")
    text, offset = found.group(0), found.start()
    return text[: start - offset] + redact_value(found.group("value")) + text[end - offset :]


def redact_properties(text: str) -> str:
    """``text`` with the values of credential-like keys replaced, line by line (properties,
    ``.env``, YAML, INI, TOML); a YAML block scalar (``password: |``) loses its whole block."""
    lines = text.split("\n")
    block_indent: int | None = None
    for index, line in enumerate(lines):
        indent = len(line) - len(line.lstrip(" \t"))
        if block_indent is not None:
            if not line.strip():
                continue
            if indent > block_indent:
                lines[index] = line[:indent] + redact_value(line[indent:])
                continue
            block_indent = None
        found = _PROPERTY_LINE.match(line)
        if found is None or not looks_like_credential_name(found.group("name")):
            continue
        value = found.group("value")
        if _BLOCK_SCALAR.fullmatch(value):
            block_indent = indent
            continue
        lines[index] = found.group("head") + _unquoted(value) + found.group("tail")
    return "\n".join(lines)


def redact_text(value: str, *, key_material: bool = True) -> str:
    """``value`` with every credential it carries replaced by a marker.

    Key material makes the whole value a marker (its label names the format, for the checks);
    ``key_material=False`` skips that test for a caller that has made it. Otherwise only the
    credential itself is replaced, so the rest stays readable: the password of a URL
    (``postgres://app:<marker>@db:5432/shop``), credential query parameters, the value of a
    credential flag (``--password=…``, ``--token …``, ``-p=…``), of a JSON pair
    (``"password": "…"``), of a properties or YAML line (``db.password=…``) and of an
    ``Authorization`` header. References (``$(DB_PASSWORD)``, ``${DB_PASSWORD}``) and existing
    markers are left alone.
    """
    if not value or value.startswith(MARKER_PREFIX):
        return value
    if len(value) <= _CLEAN_MAX_LENGTH and value in _CLEAN:  # never hash a long text for it
        return value
    label = classify_key_material(value) if key_material else None
    if label:
        return marker(label, value)
    if value.isalnum():
        return value  # every rule below needs a separator: ``://``, ``=``, ``-``, ``:``, a space
    redacted = _redact_inline(value)
    if redacted == value and len(value) <= _CLEAN_MAX_LENGTH:
        if len(_CLEAN) >= _CLEAN_MAX_ENTRIES:
            _CLEAN.clear()
        _CLEAN.add(value)
    return redacted


# Short values found clean, remembered: clusters repeat the same annotation values, env
# values, args and probe paths thousands of times. Only values that carry no credential are
# kept (with ``key_material=False`` the caller has ruled key material out).
_CLEAN: set[str] = set()
_CLEAN_MAX_LENGTH = 200
_CLEAN_MAX_ENTRIES = 50_000


def _redact_inline(value: str) -> str:
    if "://" in value:
        value = _URL.sub(_redact_url, value)
    if not _may_name_credential(value):
        return value  # the fast path: every other rule needs a credential-like name
    if "=" in value:
        value = _ASSIGNMENT.sub(_redact_assignment, value)
    if "-" in value:
        value = _INLINE_FLAG.sub(_redact_flag, value)
    if '"' in value:
        value = _JSON_PAIR.sub(_redact_json_pair, value)
        value = _ESCAPED_JSON_PAIR.sub(_redact_json_pair, value)
    if "=" in value or ":" in value:
        value = redact_properties(value)
    return _HEADER_IN_TEXT.sub(_redact_header_in_text, value)


def redact_args(args: list[object]) -> list[object]:
    """Container ``command``/``args`` (or an exec probe's command) with credentials replaced:
    each string as :func:`redact_text`, and the element after a bare credential flag
    (``["--password", "…"]``) when it is not itself a flag."""
    out: list[object] = []
    after_flag = False
    for arg in args:
        if not isinstance(arg, str):
            # a number where a string belongs (``--password 1234`` in YAML): still a credential
            secret = after_flag and arg is not None and not isinstance(arg, bool)
            out.append(marker("credential", str(arg)) if secret else arg)
            after_flag = False
            continue
        if after_flag and not arg.startswith("-"):
            out.append(redact_value(arg))
        else:
            out.append(redact_text(arg))
        after_flag = "=" not in arg and " " not in arg and is_credential_flag(arg)
    return out


# Headers that carry credentials, whatever their name says.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "cookie"})
_AUTH_SCHEME = re.compile(r"(?P<scheme>[A-Za-z][\w-]*)(?P<space>\s+)(?P<value>\S.*)", re.DOTALL)


def redact_header(name: str, value: str) -> str:
    """The value of an HTTP header with its credential replaced. ``Authorization`` keeps its
    scheme (``Bearer <marker>``); other credential headers become one marker."""
    if name.lower() not in CREDENTIAL_HEADERS and not looks_like_credential_name(name):
        return redact_text(value)
    if _is_kept(value):
        return value
    scheme = _AUTH_SCHEME.fullmatch(value) if "authorization" in name.lower() else None
    if scheme is None:
        return marker("credential", value)
    return scheme.group("scheme") + scheme.group("space") + redact_value(scheme.group("value"))
