"""Who is running the command line: the OS uid, mapped by ``cli.approvers`` to a name.

Never ``$USER``, ``$LOGNAME`` or ``getpass.getuser()``: anyone can set those. The uid is what
the operating system vouches for; ``cli.approvers`` names it (``cli:alice``), and an uid it does
not name is recorded as ``uid:1000``.
"""

from __future__ import annotations

import os

from okeguard.approval_policy import Person, cli_person
from okeguard.config import Config


def current_uid() -> int:
    """The real uid of this process (``os.getuid``)."""
    return os.getuid()


def cli_identity(config: Config | None = None) -> Person:
    """The person running this command: ``cli:<name>`` when ``config.cli.approvers`` maps the
    uid, else ``uid:<n>``."""
    return cli_person(current_uid(), (config or Config()).cli)


def cli_actor(config: Config | None = None) -> str:
    """The audit actor of the command line's user (see :func:`cli_identity`)."""
    return cli_identity(config).actor


def cli_actor_for(config_path: str | None) -> str:
    """:func:`cli_actor` for a command given ``--config FILE`` (or none)."""
    from okeguard.config import load_config

    return cli_actor(load_config(config_path))
