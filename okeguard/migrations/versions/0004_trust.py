"""Trust that cannot be bypassed: owned remediation runs, keyed audit rows, governed exceptions.

- ``remediation_requests.owner`` and ``lease_until``: the process running (or reconciling, or
  rolling back) a request, and until when its lease holds. A run renews its lease while it
  works; another process takes a request over only once the lease has run out, by
  compare-and-set;
- ``audit_events.mac``: HMAC-SHA256 of the row's hash under a key that lives outside the
  database (``OKEGUARD_AUDIT_KEY``), so a row forged or a chain rebuilt by someone with write
  access to the database, but not the key, is detected;
- ``exceptions.state``, ``approved_by``, ``approved_at``: an exception that needs an approver
  (a wildcard one, say) waits in ``pending-approval`` and applies only once approved.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

EXCEPTION_STATES = "state IN ('active', 'pending-approval', 'rejected')"


def upgrade() -> None:
    with op.batch_alter_table("remediation_requests") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("mac", sa.String(length=64), nullable=True))
    with op.batch_alter_table("exceptions") as batch:
        batch.add_column(
            sa.Column("state", sa.String(length=20), nullable=False, server_default="active")
        )
        batch.add_column(sa.Column("approved_by", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_check_constraint("state", EXCEPTION_STATES)


def downgrade() -> None:
    with op.batch_alter_table("exceptions") as batch:
        batch.drop_constraint(op.f("ck_exceptions_state"), type_="check")
        batch.drop_column("approved_at")
        batch.drop_column("approved_by")
        batch.drop_column("state")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("mac")
    with op.batch_alter_table("remediation_requests") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("owner")
