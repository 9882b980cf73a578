"""The audit schema: scans, findings, exceptions, remediation requests, audit events.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("subject_type", sa.String(length=50), nullable=False),
        sa.Column("subject_id", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_events_hash")),
    )
    op.create_index(op.f("ix_audit_events_at"), "audit_events", ["at"], unique=False)

    op.create_table(
        "exceptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("check_id", sa.String(length=100), nullable=False),
        sa.Column("cluster", sa.String(length=200), nullable=True),
        sa.Column("resource_kind", sa.String(length=100), nullable=True),
        sa.Column("resource_namespace", sa.String(length=253), nullable=True),
        sa.Column("resource_name", sa.String(length=253), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exceptions")),
    )
    op.create_index(op.f("ix_exceptions_check_id"), "exceptions", ["check_id"], unique=False)

    op.create_table(
        "remediation_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("finding_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("plan_hash", sa.String(length=64), nullable=False),
        sa.Column("requester", sa.String(length=200), nullable=False),
        sa.Column("approver", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('proposed', 'pending-approval', 'approved', 'applying', 'applied', 'failed', 'rolled-back', 'rejected', 'expired', 'superseded')",
            name=op.f("ck_remediation_requests_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remediation_requests")),
    )
    op.create_index(
        op.f("ix_remediation_requests_finding_fingerprint"),
        "remediation_requests",
        ["finding_fingerprint"],
        unique=False,
    )

    op.create_table(
        "scans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scans")),
    )
    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("check_id", sa.String(length=100), nullable=False),
        sa.Column("cluster", sa.String(length=200), nullable=False),
        sa.Column("resource_kind", sa.String(length=100), nullable=False),
        sa.Column("resource_namespace", sa.String(length=253), nullable=True),
        sa.Column("resource_name", sa.String(length=253), nullable=False),
        sa.Column("resource_container", sa.String(length=253), nullable=True),
        sa.Column("resource_ocid", sa.String(length=255), nullable=True),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_scan_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'resolved', 'exempt', 'accepted-risk', 'snoozed')",
            name=op.f("ck_findings_status"),
        ),
        sa.ForeignKeyConstraint(
            ["last_scan_id"], ["scans.id"], name=op.f("fk_findings_last_scan_id_scans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_findings")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_findings_fingerprint")),
    )
    op.create_index(
        op.f("ix_findings_cluster_status"), "findings", ["cluster", "status"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_findings_cluster_status"), table_name="findings")

    op.drop_table("findings")
    op.drop_table("scans")
    op.drop_index(
        op.f("ix_remediation_requests_finding_fingerprint"), table_name="remediation_requests"
    )

    op.drop_table("remediation_requests")
    op.drop_index(op.f("ix_exceptions_check_id"), table_name="exceptions")

    op.drop_table("exceptions")
    op.drop_index(op.f("ix_audit_events_at"), table_name="audit_events")

    op.drop_table("audit_events")
