"""Leave room in the findings table's pages on PostgreSQL.

Every recorded scan updates ``last_seen`` on each finding it sees. With full pages PostgreSQL
writes each new row version to another page and adds index entries for it, and 100 recordings
of a 10,000-workload cluster grew the table past 1 GB. With free space in the page, and no index
on the updated columns, the update stays on the page (a heap-only tuple) and the old version is
pruned in place. SQLite updates rows in place and needs nothing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

FILLFACTOR = 50


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE findings SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE findings RESET (fillfactor)")
