"""The PostgreSQL backend: many worker processes (and machines) on one database.

``postgresql://user:password@host:5432/dbname?schema=perdure`` (``postgres://`` too).
Every table lives in one schema (``perdure`` by default, created if missing), so
perdure can share an application's database. Other query parameters go to libpq
(``sslmode``, ``connect_timeout``, ...); ``pool_size`` caps the connections per event
loop (default 10).

Needs psycopg 3: ``pip install 'perdure[postgres]'``. Every method is one transaction;
writes by workers are fenced by the lease token, claims skip rows other workers hold
(``FOR UPDATE SKIP LOCKED``), and every transaction that writes several runs locks
them in id order, so that they do not deadlock one another. Checkpoint batches are
written a few statements per batch; concurrent starts and messages share a
transaction. Migrations run on open, one process at a time per schema.

psycopg's async connections belong to the event loop that opened them, so the backend
keeps a connection pool per loop (the sync surface runs a loop of its own).
"""

from .backend import PostgresBackend

__all__ = ["PostgresBackend"]
