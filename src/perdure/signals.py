"""Stopping on SIGINT or SIGTERM: the long-running commands (a worker, the server)
end cleanly on either."""

from __future__ import annotations

import asyncio
import contextlib
import signal


def stop_event() -> asyncio.Event:
    """An event the running loop sets on SIGINT or SIGTERM. Where signal handlers
    cannot be installed (another thread than the main one, a platform without them),
    only KeyboardInterrupt stops the loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop
