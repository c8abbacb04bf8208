"""The SQLite backend: the embedded default, safe for several processes on one file.

Every domain transaction runs on one dedicated thread with its own connection, as
``BEGIN IMMEDIATE`` (so two processes never interleave writes) in WAL mode with a
busy timeout. ``synchronous=FULL`` by default: a commit survives power loss. Pass
``?synchronous=normal`` in the URL to trade that for speed (still safe against a
process crash).
"""

from .backend import SQLiteBackend

__all__ = ["SQLiteBackend"]
