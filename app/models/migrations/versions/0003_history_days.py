"""history_days: controlled lines summed per registration, supplier, UTC day and package (issue 21)

Revision ID: 0003_history_days
Revises: 0002_outbox

Why: the History window and the unusual-quantity notice read every order line otherwise (2.7 s on a 300k-order
book). The database keeps this table itself, with triggers on orders, order_lines and receipts, so it changes in the
same transaction as the order, line or receipt, whoever writes them (the program, an import, a hand-made fix).

A row holds the lines of counted orders (signed, and not cancelled, not accepted or lost: ``COUNTED_STATUSES`` in
app.services.orders.history) signed on one UTC day, with the same registration, supplier, NDC, schedule, unit,
package size and description: how many lines, packages ordered and packages received. Non-controlled lines ("NC")
are left out. A row whose last line leaves is deleted.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_history_days'
down_revision = '0002_outbox'
branch_labels = None
depends_on = None

# Orders whose lines count: keep in step with COUNTED_STATUSES (tests/unit/orders/test_history_days.py checks).
NOT_COUNTED = ("draft", "cancelled", "not_accepted", "lost")
KEY = ("registration_id", "day", "supplier_id", "ndc", "schedule", "unit", "package_quantity", "description")
# The order the SELECTs below give them in.
COLUMNS = ("registration_id", "supplier_id", "day", "ndc", "schedule", "unit", "package_quantity", "description",
           "lines", "packages", "fulfilled")
TRIGGERS = (
    ("orders", "history_days_order_leaves"), ("orders", "history_days_order_enters"),
    ("orders", "history_days_order_deleted"), ("order_lines", "history_days_line_added"),
    ("order_lines", "history_days_line_removed"), ("order_lines", "history_days_line_changed"),
    ("receipts", "history_days_receipt_added"), ("receipts", "history_days_receipt_removed"),
    ("receipts", "history_days_receipt_changed"),
)


def _day(dialect: str, timestamp: str) -> str:
    return f"date({timestamp})" if dialect == "sqlite" else f"CAST({timestamp} AS date)"


def _counted(o: str) -> str:
    not_counted = ", ".join(f"'{s}'" for s in NOT_COUNTED)
    return f"({o}.signed_at IS NOT NULL AND {o}.status NOT IN ({not_counted}))"


def _upsert(select: str) -> str:
    columns = ", ".join(COLUMNS)
    adds = ", ".join(f"{c} = history_days.{c} + excluded.{c}" for c in ("lines", "packages", "fulfilled"))
    return (f"INSERT INTO history_days ({columns}) {select} "
            f"ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET {adds}")


def _received(line_id: str) -> str:
    return f"COALESCE((SELECT sum(r.packages_received) FROM receipts r WHERE r.order_line_id = {line_id}), 0)"


def _order_lines(dialect: str, o: str, sign: str) -> str:
    """All controlled lines of order ``o`` (OLD/NEW), added (sign '') or taken away (sign '-')."""
    return _upsert(
        f"SELECT {o}.registration_id, {o}.supplier_id, {_day(dialect, o + '.signed_at')}, l.ndc, l.schedule, l.unit, "
        f"l.package_quantity, l.description, {sign}count(*), {sign}sum(l.packages), "
        f"{sign}sum({_received('l.id')}) FROM order_lines l WHERE l.order_id = {o}.id AND l.schedule <> 'NC' "
        "GROUP BY l.ndc, l.schedule, l.unit, l.package_quantity, l.description")


def _one_line(dialect: str, line: str, sign: str) -> str:
    """Line ``line`` (OLD/NEW) of a counted order, added or taken away."""
    return _upsert(
        f"SELECT o.registration_id, o.supplier_id, {_day(dialect, 'o.signed_at')}, {line}.ndc, {line}.schedule, "
        f"{line}.unit, {line}.package_quantity, {line}.description, {sign}1, {sign}{line}.packages, "
        f"{sign}{_received(line + '.id')} FROM orders o WHERE o.id = {line}.order_id AND {_counted('o')} "
        f"AND {line}.schedule <> 'NC'")


def _one_receipt(dialect: str, receipt: str, sign: str) -> str:
    return _upsert(
        f"SELECT o.registration_id, o.supplier_id, {_day(dialect, 'o.signed_at')}, l.ndc, l.schedule, l.unit, "
        f"l.package_quantity, l.description, 0, 0, {sign}{receipt}.packages_received FROM order_lines l, orders o "
        f"WHERE l.id = {receipt}.order_line_id AND o.id = l.order_id AND {_counted('o')} AND l.schedule <> 'NC'")


def _tidy(dialect: str, order_id: str) -> str:
    """Rows left without lines (the order's registration and day only)."""
    return (f"DELETE FROM history_days WHERE lines <= 0 AND EXISTS (SELECT 1 FROM orders o WHERE o.id = {order_id} "
            f"AND history_days.registration_id = o.registration_id "
            f"AND history_days.day = {_day(dialect, 'o.signed_at')})")


def _tidy_order(dialect: str, o: str) -> str:
    return (f"DELETE FROM history_days WHERE lines <= 0 AND registration_id = {o}.registration_id "
            f"AND day = {_day(dialect, o + '.signed_at')}")


def _same_key(dialect: str) -> str:
    return (f"(NEW.registration_id = OLD.registration_id AND NEW.supplier_id = OLD.supplier_id "
            f"AND {_day(dialect, 'NEW.signed_at')} = {_day(dialect, 'OLD.signed_at')})")


def _actions(dialect: str) -> dict[str, tuple[str, str, str, list[str]]]:
    """Per trigger: (timing and event, table, condition, statements) — the same SQL on both engines."""
    line_keys = "order_id, ndc, schedule, unit, package_quantity, description, packages"
    leaves = f"{_counted('OLD')} AND NOT ({_counted('NEW')} AND {_same_key(dialect)})"
    enters = f"{_counted('NEW')} AND NOT ({_counted('OLD')} AND {_same_key(dialect)})"
    return {
        "history_days_order_leaves": ("AFTER UPDATE OF status, signed_at, registration_id, supplier_id", "orders",
                                      leaves, [_order_lines(dialect, "OLD", "-"), _tidy_order(dialect, "OLD")]),
        "history_days_order_enters": ("AFTER UPDATE OF status, signed_at, registration_id, supplier_id", "orders",
                                      enters, [_order_lines(dialect, "NEW", "")]),
        "history_days_order_deleted": ("BEFORE DELETE", "orders", _counted("OLD"),
                                       [_order_lines(dialect, "OLD", "-"), _tidy_order(dialect, "OLD")]),
        "history_days_line_added": ("AFTER INSERT", "order_lines", "NEW.schedule <> 'NC'",
                                    [_one_line(dialect, "NEW", "")]),
        "history_days_line_removed": ("AFTER DELETE", "order_lines", "OLD.schedule <> 'NC'",
                                      [_one_line(dialect, "OLD", "-"), _tidy(dialect, "OLD.order_id")]),
        "history_days_line_changed": (f"AFTER UPDATE OF {line_keys}", "order_lines",
                                      "OLD.schedule <> 'NC' OR NEW.schedule <> 'NC'",
                                      [_one_line(dialect, "OLD", "-"), _one_line(dialect, "NEW", ""),
                                       _tidy(dialect, "OLD.order_id")]),
        "history_days_receipt_added": ("AFTER INSERT", "receipts", "true", [_one_receipt(dialect, "NEW", "")]),
        "history_days_receipt_removed": ("AFTER DELETE", "receipts", "true", [_one_receipt(dialect, "OLD", "-")]),
        "history_days_receipt_changed": ("AFTER UPDATE OF order_line_id, packages_received", "receipts", "true",
                                         [_one_receipt(dialect, "OLD", "-"), _one_receipt(dialect, "NEW", "")]),
    }


def create_triggers(dialect: str) -> list[str]:
    """The DDL of the triggers (SQLite: trigger bodies; PostgreSQL: one plpgsql function per trigger)."""
    ddl = []
    for name, (when, table, condition, statements) in _actions(dialect).items():
        body = "; ".join(statements) + ";"
        if dialect == "sqlite":
            ddl.append(f"CREATE TRIGGER {name} {when} ON {table} FOR EACH ROW WHEN {condition} BEGIN {body} END")
        else:
            returned = "OLD" if when.startswith("BEFORE DELETE") else "NULL"
            ddl.append(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} "
                       f"RETURN {returned}; END $$")
            ddl.append(f"CREATE TRIGGER {name} {when} ON {table} FOR EACH ROW WHEN ({condition}) "
                       f"EXECUTE FUNCTION {name}()")
    return ddl


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table('history_days',
    sa.Column('registration_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('supplier_id', sa.Integer(), nullable=False),
    sa.Column('ndc', sa.String(length=11), nullable=False),
    sa.Column('schedule', sa.String(length=4), nullable=False),
    sa.Column('unit', sa.String(length=2), nullable=False),
    sa.Column('package_quantity', sa.Numeric(precision=12, scale=3), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('packages', sa.Integer(), nullable=False),
    sa.Column('fulfilled', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint(*KEY, name=op.f('pk_history_days')),
    # SQLite: the rows stored in key order, so reading a registration's months is one covering range scan.
    sqlite_with_rowid=False,
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_signed_at', ['signed_at'], unique=False)
    # What is already in the book, then the triggers keep it.
    op.execute(
        f"INSERT INTO history_days ({', '.join(COLUMNS)}) "
        f"SELECT o.registration_id, o.supplier_id, {_day(dialect, 'o.signed_at')}, l.ndc, l.schedule, l.unit, "
        f"l.package_quantity, l.description, count(*), sum(l.packages), sum({_received('l.id')}) "
        f"FROM order_lines l JOIN orders o ON o.id = l.order_id WHERE {_counted('o')} AND l.schedule <> 'NC' "
        f"GROUP BY o.registration_id, o.supplier_id, {_day(dialect, 'o.signed_at')}, l.ndc, l.schedule, l.unit, "
        "l.package_quantity, l.description")
    for statement in create_triggers(dialect):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, name in TRIGGERS:
        if dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_table('history_days')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_signed_at')
