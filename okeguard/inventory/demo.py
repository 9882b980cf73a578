"""The bundled demo environment (``examples/demo/``): a snapshot of a shop on OKE and its config.

In an installed wheel the demo lives at ``okeguard/_demo``; in a source checkout it is read from
``examples/demo`` directly.
"""

from __future__ import annotations

from pathlib import Path

from okeguard.errors import InputError

SNAPSHOT_NAME = "snapshot.jsonl"
CONFIG_NAME = "okeguard.yaml"


def demo_dir() -> Path:
    """The folder holding the demo snapshot and configuration."""
    package_root = Path(__file__).resolve().parent.parent
    for candidate in (package_root / "_demo", package_root.parent / "examples" / "demo"):
        if (candidate / SNAPSHOT_NAME).is_file():
            return candidate
    raise InputError("the demo environment is missing from this installation (reinstall okeguard)")


def demo_snapshot_path() -> Path:
    """The main demo cluster, ``shop-prod``."""
    return demo_dir() / SNAPSHOT_NAME


def demo_snapshot_paths() -> list[Path]:
    """Every demo cluster: the main snapshot first, then any other ``*.jsonl`` in name order."""
    main = demo_snapshot_path()
    others = sorted(p for p in demo_dir().glob("*.jsonl") if p != main)
    return [main, *others]


def demo_config_path() -> Path | None:
    path = demo_dir() / CONFIG_NAME
    return path if path.is_file() else None
