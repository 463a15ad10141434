"""X12-safe descriptions on the lines of draft orders saved before the rule existed

Revision ID: 0004_safe_draft_descriptions
Revises: 0003_history_days

Why: a line's description is signed as X12 PID05 (1-80 printable ASCII characters, no delimiter). Lines added
before the one rule (app.models.descriptions) keep their raw catalog text, e.g. "Xanax® * 1 mg", and such a draft
would fail only when it is signed. This rewrites the description of every line of a DRAFT order with the rule.
Signed orders are never touched: their content is immutable and the signed document is the record.
No schema change; nothing to undo (the raw text was never signed).
"""
from alembic import op
import sqlalchemy as sa

from app.models.descriptions import x12_safe_description


revision = '0004_safe_draft_descriptions'
down_revision = '0003_history_days'
branch_labels = None
depends_on = None


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.text(
        "SELECT l.id, l.description, l.ndc FROM order_lines l JOIN orders o ON o.id = l.order_id "
        "WHERE o.status = 'draft' AND o.signed_document IS NULL")).all()
    for line_id, description, ndc in rows:
        safe = x12_safe_description(description or "", ndc=ndc)
        if safe != description:
            connection.execute(sa.text("UPDATE order_lines SET description = :d WHERE id = :i"),
                               {"d": safe, "i": line_id})


def downgrade() -> None:
    pass
