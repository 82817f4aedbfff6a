#!/usr/bin/env python3
"""A backend that publishes to Switchboard from its own PostgreSQL transaction (the outbox).

The business change (a row of `orders`) and the publication (a row of `switchboard_outbox`) are
written in ONE transaction: both are committed, or neither is. Switchboard, configured with
`[outbox.postgres]` on the same database, publishes each committed outbox row to its topic and
deletes it (docs/outbox.md). A rolled-back transaction therefore publishes nothing, and a
committed one is published even if this process dies right after the commit.

Needs psycopg 3 (`pip install "psycopg[binary]"`) and the outbox table
(crates/switchboard-server/migrations/0001_switchboard_outbox.sql).

    python3 outbox_publish.py --dsn postgresql://app@localhost/app setup
    python3 outbox_publish.py --dsn postgresql://app@localhost/app ship 42
    python3 outbox_publish.py --dsn ... ship 42 --state cancelled --fail   # rolled back: nothing published

The DSN may also come from DATABASE_URL. Exit status: 0 committed, 1 database error,
2 bad arguments, 3 rolled back on purpose (--fail).
"""

import argparse
import json
import os
import sys

import psycopg

# The application's own table; Switchboard never reads it.
ORDERS = """
CREATE TABLE IF NOT EXISTS orders (
    id         bigint      PRIMARY KEY,
    state      text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)
"""


class Rollback(Exception):
    """Raised inside the transaction to roll it back (a failure after both writes)."""


def setup(conn: psycopg.Connection) -> None:
    """Creates the business table (the outbox table comes from Switchboard's migration)."""
    with conn.transaction():
        conn.execute(ORDERS)


def set_state(conn: psycopg.Connection, order_id: int, state: str, fail: bool = False) -> None:
    """Sets an order's state and publishes the change to `orders/<id>`, in one transaction.

    With `fail`, raises Rollback after both writes: the transaction is rolled back, so neither
    the order's change nor the publication exists afterwards.
    """
    with conn.transaction():
        conn.execute(
            "INSERT INTO orders (id, state) VALUES (%s, %s) "
            "ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, updated_at = now()",
            (order_id, state),
        )
        conn.execute(
            "INSERT INTO switchboard_outbox (topic, data, event, key) VALUES (%s, %s, %s, %s)",
            (
                f"orders/{order_id}",
                json.dumps({"id": order_id, "state": state}),
                "order",
                # The same change inserted twice (a retried job) is delivered once where the
                # topic keeps history: 1 to 64 bytes.
                f"order-{order_id}-{state}",
            ),
        )
        if fail:
            raise Rollback(f"order {order_id}: failing after both writes, as asked")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL"), help="PostgreSQL URL (default: $DATABASE_URL)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup", help="create the orders table")
    ship = commands.add_parser("ship", help="set an order's state and publish it, in one transaction")
    ship.add_argument("order_id", type=int)
    ship.add_argument("--state", default="shipped")
    ship.add_argument("--fail", action="store_true", help="fail after both writes: the transaction is rolled back")
    args = parser.parse_args(argv)
    if not args.dsn:
        parser.error("no database: give --dsn or set DATABASE_URL")
    try:
        with psycopg.connect(args.dsn) as conn:
            if args.command == "setup":
                setup(conn)
                print("orders table ready")
            else:
                try:
                    set_state(conn, args.order_id, args.state, fail=args.fail)
                except Rollback as e:
                    print(f"rolled back: {e}", file=sys.stderr)
                    return 3
                print(f"committed: order {args.order_id} is {args.state}; published to orders/{args.order_id}")
    except psycopg.Error as e:
        print(f"database error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
