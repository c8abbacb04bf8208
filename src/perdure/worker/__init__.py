"""Workers execute runs: see :class:`perdure.worker.worker.Worker`."""

from .worker import Worker

__all__ = ["Worker"]
