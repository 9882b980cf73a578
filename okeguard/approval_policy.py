"""Who may approve: one rule for Slack and the command line, for fixes and for exceptions.

A person approves when, in this order:

1. they are an approver at all — on Slack, in ``slack.approvers`` (users or user groups); on the
   command line, their OS uid is in ``cli.approvers`` (and while ``slack.approvers`` is set but
   ``cli.approvers`` is not, command-line approval is off: approvals go through Slack);
2. for every scope that covers the request — ``slack.approvers_by_cluster[cluster]``,
   ``slack.approvers_by_remediation[remediation]`` — they are in that scope too. Scopes narrow,
   never widen: being in a scope does not make anyone an approver. An action that covers every
   cluster (a fleet-wide exception) needs a person in every cluster scope;
3. they are not the requester under any of their names (``slack:U…``, ``cli:name``, ``uid:N``,
   linked by ``cli.approvers[].slack_user``), unless ``remediation.allow_self_approval`` lists
   the remediation.

Pure: group membership comes from the ``members`` callable (Slack's ``usergroups.users.list``
on the bot, nothing on the command line), and any failure to read it refuses (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from okeguard.config import CliConfig, Config, People, SlackConfig
from okeguard.config_access import ScopedApprovers

Members = Callable[[str], Collection[str]]
EVERY_CLUSTER = "*"  # the cluster of an action covering every cluster


def no_groups(group: str) -> Collection[str]:
    """The ``members`` of a front door that cannot read Slack user groups: always fails."""
    raise LookupError(f"Slack user group {group} cannot be read here")


@dataclass(frozen=True)
class Person:
    """Someone acting, with every name they have in the audit trail.

    ``actor`` is the name their actions are recorded under; ``cli_name`` is set when they act
    on the command line as a configured approver, ``slack_user`` when their Slack ID is known.
    """

    actor: str
    slack_user: str | None = None
    cli_name: str | None = None
    uid: int | None = None
    aliases: frozenset[str] = field(default_factory=frozenset)

    @property
    def on_cli(self) -> bool:
        return self.uid is not None

    def is_(self, actor: str | None) -> bool:
        """Whether ``actor`` (say, a request's requester) is this person under any name."""
        return actor is not None and (actor == self.actor or actor in self.aliases)


def _names(slack_user: str | None, cli_name: str | None, uid: int | None) -> frozenset[str]:
    names = {f"slack:{slack_user}" if slack_user else "", f"cli:{cli_name}" if cli_name else ""}
    names.add(f"uid:{uid}" if uid is not None else "")
    return frozenset(names - {""})


def slack_person(user_id: str, cli: CliConfig) -> Person:
    """The Slack user ``user_id``, with the command-line names ``cli.approvers`` gives them."""
    aliases = set(_names(user_id, None, None))
    for approver in cli.approvers:
        if approver.slack_user == user_id:
            aliases |= _names(None, approver.name, approver.uid)
    return Person(f"slack:{user_id}", slack_user=user_id, aliases=frozenset(aliases))


def cli_person(uid: int, cli: CliConfig) -> Person:
    """The command-line user with OS uid ``uid``: ``cli:<name>`` when ``cli.approvers`` maps the
    uid, else ``uid:<n>`` (never ``$USER``, which anyone can set)."""
    approver = cli.by_uid(uid)
    if approver is None:
        return Person(f"uid:{uid}", uid=uid, aliases=_names(None, None, uid))
    return Person(
        f"cli:{approver.name}",
        slack_user=approver.slack_user,
        cli_name=approver.name,
        uid=uid,
        aliases=_names(approver.slack_user, approver.name, uid),
    )


@dataclass(frozen=True)
class ApprovalRules:
    """The settings the rule reads (the Slack bot's authorizer may know only ``slack``)."""

    slack: SlackConfig = field(default_factory=SlackConfig)
    cli: CliConfig = field(default_factory=CliConfig)
    allow_self_approval: frozenset[str] = frozenset()

    @classmethod
    def of(cls, config: Config) -> ApprovalRules:
        return cls(config.slack, config.cli, frozenset(config.remediation.allow_self_approval))


def _approver_at_all(person: Person, rules: ApprovalRules, members: Members) -> str | None:
    if person.on_cli:
        if not rules.cli.approvers and not rules.slack.approvers.anyone:
            return (
                "approving on the command line is off (slack.approvers is set, cli.approvers "
                "is not): approve in Slack"
            )
        if person.cli_name is None:
            return f"uid {person.uid} may not approve: it is not in cli.approvers"
        return None
    approvers = rules.slack.approvers
    if approvers.anyone:
        return "nobody may approve: slack.approvers is empty"
    if person.slack_user is None or not _in(person, approvers, members):
        return f"{person.actor} may not approve (not in slack.approvers)"
    return None


def _in(person: Person, people: People, members: Members) -> bool:
    """Whether ``person`` is one of ``people`` (users, cli names, then user groups)."""
    clis = people.cli if isinstance(people, ScopedApprovers) else ()
    if person.cli_name is not None and person.cli_name in clis:
        return True
    if person.slack_user is None:
        return False
    if person.slack_user in people.users:
        return True
    return any(person.slack_user in members(group) for group in people.groups)


def _scope_refusal(
    person: Person, scope: ScopedApprovers, key: str, what: str, members: Members
) -> str | None:
    try:
        if _in(person, scope, members):
            return None
    except Exception as exc:  # a group could not be read: say so, and refuse
        return f"cannot tell whether {person.actor} is among the approvers of {what} ({exc})"
    return f"{person.actor} may not approve for {what} (not in {key})"


def approval_refusal(
    person: Person,
    rules: ApprovalRules,
    *,
    cluster: str | None = None,
    remediation: str | None = None,
    requester: str | None = None,
    members: Members = no_groups,
) -> str | None:
    """Why ``person`` may not approve an action on ``cluster`` (``EVERY_CLUSTER``: all of them)
    by ``remediation``, requested by ``requester``; None when they may.

    ``cluster`` and ``remediation`` None: no scope applies. ``requester`` None: no
    requester ≠ approver check (a rejection, or the caller checks it itself).
    """
    try:
        problem = _approver_at_all(person, rules, members)
    except Exception as exc:  # Slack could not tell us: fail closed
        problem = f"cannot tell whether {person.actor} is an approver ({type(exc).__name__})"
    if problem:
        return problem
    scopes: list[tuple[ScopedApprovers, str, str]] = []
    by_cluster = rules.slack.approvers_by_cluster
    if cluster == EVERY_CLUSTER:
        scopes += [
            (s, f"slack.approvers_by_cluster.{name}", f"cluster {name}")
            for name, s in sorted(by_cluster.items())
        ]
    elif cluster is not None and cluster in by_cluster:
        key = f"slack.approvers_by_cluster.{cluster}"
        scopes.append((by_cluster[cluster], key, f"cluster {cluster}"))
    if remediation is not None and remediation in rules.slack.approvers_by_remediation:
        scope = rules.slack.approvers_by_remediation[remediation]
        key = f"slack.approvers_by_remediation.{remediation}"
        scopes.append((scope, key, f"remediation {remediation}"))
    for scope, key, what in scopes:
        problem = _scope_refusal(person, scope, key, what, members)
        if problem:
            return problem
    if person.is_(requester) and remediation not in rules.allow_self_approval:
        also = "" if requester == person.actor else f" (requested as {requester})"
        return f"a requester cannot approve their own request{also}"
    return None
