"""The MySQL backend: many worker processes (and machines) on one MySQL or MariaDB
database.

``mysql://user:password@host:3306/dbname?prefix=perdure_`` (``mariadb://`` too), on
MySQL 8.0 or MariaDB 10.6 and later (``FOR UPDATE SKIP LOCKED``). Every table name
starts with the prefix (``perdure_`` by default), so perdure can share an
application's database. ``pool_size`` caps the connections per event loop (default
10); ``connect_timeout`` (seconds, default 10), ``unix_socket``, ``ssl=true`` and
``ssl_ca=/path/ca.pem`` shape the connection.

Needs asyncmy: ``pip install 'perdure[mysql]'``. Tables are InnoDB and every
transaction runs at READ COMMITTED, so range scans take no gap locks. Every method is
one transaction; writes by workers are fenced by the lease token, claims skip rows
other workers hold (``FOR UPDATE SKIP LOCKED``), and every transaction that writes
several runs locks them in id order, so that they do not deadlock one another (and
one that is chosen as a deadlock victim anyway, or times out waiting for a lock, is
run again). Checkpoint batches are written a few statements per batch; concurrent
starts and messages share a transaction. Migrations run on open, one process at a
time per store (``GET_LOCK``).

asyncmy's connections belong to the event loop that opened them, so the backend keeps
a connection pool per loop (the sync surface runs a loop of its own).
"""

from .backend import MySQLBackend

__all__ = ["MySQLBackend"]
