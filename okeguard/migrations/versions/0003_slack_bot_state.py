"""What the Slack bot keeps: snooze expiry, posture history, posted messages, handled deliveries
and sent digests.

- ``findings.status_until``: a snoozed or accepted-risk finding reopens after it;
- ``cluster_posture``: counts by severity and the posture score of each recorded scan (the
  digest's trend chart and score changes);
- ``slack_messages``: messages the bot may update (``chat.update``) later;
- ``slack_deliveries``: keys of deliveries already handled (a retried event runs once);
- ``digests``: digests sent per channel, with the scores they reported.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        batch.add_column(sa.Column("status_until", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "cluster_posture",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("cluster", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("critical", sa.Integer(), nullable=False),
        sa.Column("high", sa.Integer(), nullable=False),
        sa.Column("medium", sa.Integer(), nullable=False),
        sa.Column("low", sa.Integer(), nullable=False),
        sa.Column("info", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["scan_id"], ["scans.id"], name=op.f("fk_cluster_posture_scan_id_scans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_posture")),
    )
    op.create_index(
        op.f("ix_cluster_posture_cluster_at"), "cluster_posture", ["cluster", "at"], unique=False
    )
    op.create_table(
        "slack_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=50), nullable=False),
        sa.Column("ts", sa.String(length=50), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["remediation_requests.id"],
            name=op.f("fk_slack_messages_request_id_remediation_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_messages")),
    )
    op.create_index(
        op.f("ix_slack_messages_request_id"), "slack_messages", ["request_id"], unique=False
    )
    op.create_table(
        "slack_deliveries",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_slack_deliveries")),
    )
    op.create_index(
        op.f("ix_slack_deliveries_received_at"), "slack_deliveries", ["received_at"], unique=False
    )
    op.create_table(
        "digests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=50), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digests")),
    )
    op.create_index(
        op.f("ix_digests_channel_sent_at"), "digests", ["channel", "sent_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_digests_channel_sent_at"), table_name="digests")
    op.drop_table("digests")
    op.drop_index(op.f("ix_slack_deliveries_received_at"), table_name="slack_deliveries")
    op.drop_table("slack_deliveries")
    op.drop_index(op.f("ix_slack_messages_request_id"), table_name="slack_messages")
    op.drop_table("slack_messages")
    op.drop_index(op.f("ix_cluster_posture_cluster_at"), table_name="cluster_posture")
    op.drop_table("cluster_posture")
    with op.batch_alter_table("findings") as batch:
        batch.drop_column("status_until")
