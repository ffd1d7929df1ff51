"""ANALYZE as autovacuum would, for a PostgreSQL server running with ``autovacuum = off``."""

from __future__ import annotations

import threading
from collections import Counter

from environment import connect

ANALYZE_CHECK_SECONDS = 5.0


class Autoanalyze(threading.Thread):
    """ANALYZE as autovacuum would, for a server running with ``autovacuum = off``.

    Without it the tables the worker fills never get statistics, the planner keeps
    choosing plans made for an empty table (a lookup by provider reference walks every
    record of the organisation), and the cost per event grows with the table: the bench
    would measure the server's configuration, not the worker. Thresholds are autovacuum's
    defaults (50 rows + 10 % changed since the last ANALYZE); VACUUM is not emulated.
    """

    TABLES = (
        "provider_events",
        "provider_records",
        "reconciliation_items",
        "reconciliation_discrepancies",
        "reconciliation_action_logs",
    )

    def __init__(self) -> None:
        super().__init__(name="autoanalyze", daemon=True)
        self.finish = threading.Event()
        self.runs: Counter[str] = Counter()

    def run(self) -> None:
        with connect(autocommit=True) as connection:
            while not self.finish.wait(ANALYZE_CHECK_SECONDS):
                rows = connection.execute(
                    "SELECT s.relname, s.n_mod_since_analyze, greatest(c.reltuples, 0) "
                    "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                    "WHERE s.relname = ANY(%s)",
                    (list(self.TABLES),),
                ).fetchall()
                for table, modified, tuples in rows:
                    if modified > 50 + 0.1 * tuples:
                        connection.execute(f"ANALYZE {table}")
                        self.runs[table] += 1

    def stop(self) -> None:
        self.finish.set()
        self.join(timeout=30)


def autovacuum_is_on() -> bool:
    with connect(autocommit=True) as connection:
        return connection.execute("SHOW autovacuum").fetchone()[0] == "on"
