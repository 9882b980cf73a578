"""What a container probably needs that ``add-security-context`` takes away: root, or a
filesystem it can write outside ``/tmp``.

Both are guesses from the image name, the ports and the command, used for risk notes and for the
``conservative`` variant; a guess never changes what the default variant writes.

:data:`WRITABLE_PATHS` is the table of well-known images that write outside ``/tmp`` as shipped.
Patterns are matched (:func:`fnmatch.fnmatchcase`) against the image's repository path with the
registry, tag and digest removed and Docker Hub's ``library/`` prefix dropped, at the end of the
path, so a mirror (``fra.ocir.io/tenancy/nginx``) matches like the original. The first match
wins; ``{name}`` in a path is the repository's last component. Sources: each image's Dockerfile
and its documentation for read-only root filesystems.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

from okeguard.checks.images import parse_image

WRITABLE_PATHS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # proxy caches (client_temp…); the pid file is /tmp/nginx.pid, which okeguard-tmp covers
    ("nginxinc/nginx-unprivileged", ("/var/cache/nginx", "/tmp")),
    # Bitnami images keep runtime state under the app's directory (their charts mount these)
    (
        "bitnami/*",
        ("/opt/bitnami/{name}/tmp", "/opt/bitnami/{name}/logs", "/opt/bitnami/{name}/conf"),
    ),
    # proxy caches and the pid file /var/run/nginx.pid
    ("nginx", ("/var/cache/nginx", "/var/run")),
    # the socket directory, and PGDATA (a literal PGDATA env var wins over the default)
    ("postgres", ("/var/run/postgresql", "$PGDATA")),
    # logs/httpd.pid
    ("httpd", ("/usr/local/apache2/logs",)),
    ("redis", ("/data",)),
    ("mysql", ("/var/lib/mysql", "/var/run/mysqld")),
    ("mariadb", ("/var/lib/mysql", "/run/mysqld")),
    ("mongo", ("/data/db", "/data/configdb")),
    ("grafana/grafana", ("/var/lib/grafana",)),
    ("prom/prometheus", ("/prometheus",)),
    ("tomcat", ("/usr/local/tomcat/logs", "/usr/local/tomcat/work", "/usr/local/tomcat/temp")),
)
_PGDATA_DEFAULT = "/var/lib/postgresql/data"

# Images that start as root (and drop privileges themselves, or never do) unless told otherwise.
_ROOT_IMAGE_NAMES = frozenset(
    {
        "nginx",
        "httpd",
        "apache",
        "apache2",
        "haproxy",
        "postgres",
        "mysql",
        "mariadb",
        "mongo",
        "redis",
        "rabbitmq",
        "docker",
        "dind",
        "busybox",
        "alpine",
        "ubuntu",
        "debian",
        "centos",
    }
)
_ROOT_COMMANDS = re.compile(r"\b(chown|chmod|apt-get|apk add|yum|dnf|su|sudo|useradd|iptables)\b")


def repository(image: str) -> str:
    """The repository path of ``image`` without registry, tag, digest and ``library/``."""
    return parse_image(image).repository.removeprefix("library/")


def root_reason(container: Mapping[str, Any]) -> str | None:
    """Why ``container`` probably needs to run as root, or None."""
    image = str(container.get("image") or "")
    repo = repository(image) if image else ""
    name = repo.rsplit("/", 1)[-1]
    if (
        repo
        and "unprivileged" not in repo
        and not repo.startswith("bitnami/")
        and (name in _ROOT_IMAGE_NAMES or name.startswith("gitlab"))
    ):
        return f"its image {image} usually starts as root"
    for port in container.get("ports") or ():
        number = port.get("containerPort") if isinstance(port, dict) else None
        if isinstance(number, int) and number < 1024:
            return f"it listens on port {number}, which needs root or NET_BIND_SERVICE"
    words = [str(x) for x in (container.get("command") or []) + (container.get("args") or [])]
    found = _ROOT_COMMANDS.search(" ".join(words))
    if found:
        return f"its command runs {found.group(1)}, which needs root"
    return None


def writable_paths(container: Mapping[str, Any]) -> tuple[str, ...]:
    """The paths outside ``/tmp``'s reach that ``container``'s image writes, from
    :data:`WRITABLE_PATHS` (empty for an image not in the table)."""
    image = str(container.get("image") or "")
    if not image:
        return ()
    repo = repository(image)
    for pattern, paths in WRITABLE_PATHS:
        if fnmatchcase(repo, pattern) or fnmatchcase(repo, f"*/{pattern}"):
            name = repo.rsplit("/", 1)[-1]
            return tuple(_resolve(p, name, container) for p in paths)
    return ()


def _resolve(path: str, name: str, container: Mapping[str, Any]) -> str:
    if path == "$PGDATA":
        for var in container.get("env") or ():
            if isinstance(var, dict) and var.get("name") == "PGDATA" and var.get("value"):
                return str(var["value"])
        return _PGDATA_DEFAULT
    return path.replace("{name}", name)


def covered(path: str, mount_paths: set[str]) -> bool:
    """True when a volume is mounted at ``path`` or at a directory above it."""
    path = "/" + path.strip("/")
    for mount in mount_paths:
        mount = "/" + mount.strip("/")
        if path == mount or path.startswith(mount.rstrip("/") + "/"):
            return True
    return False
