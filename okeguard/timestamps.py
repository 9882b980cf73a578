"""Reading Kubernetes timestamps, whatever form they arrive in.

The API server sends RFC 3339 strings (``2024-05-01T10:00:00Z``), but a manifest may carry them
unquoted, and YAML then turns ``creationTimestamp: 2020-01-01T00:00:00Z`` into a ``datetime``
(and ``2020-01-01`` into a ``date``). Every age check reads times through
:func:`parse_timestamp`, so all of these mean the same instant.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time


def parse_timestamp(value: object) -> datetime | None:
    """The instant ``value`` names, as an aware datetime in UTC; None when it names none.

    Accepts an RFC 3339 / ISO 8601 string (``Z`` or an offset; lower-case ``t``/``z`` too), a
    ``datetime`` and a ``date`` (midnight). A value without a time zone is taken as UTC, as
    Kubernetes writes its timestamps in UTC. An instant outside the years 1 to 9999 in UTC
    names none.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time.min)
    elif isinstance(value, str) and value.strip():
        text = value.strip().upper()
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            return None
    else:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is after the last datetime in UTC
        return None
