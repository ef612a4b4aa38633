"""Start-up of the ``jaxinfo`` console command: signal handling before anything heavy is imported.

This module lives outside the ``jaxinfo`` package on purpose: importing ``jaxinfo`` imports JAX
(seconds), and an interrupt during that import must already end in one line and exit status
130 (SIGINT) or 143 (SIGTERM), not in a traceback or, later, in a crash of the JAX runtime.

On SIGINT or SIGTERM, at any moment:

* temporary output files still being written (registered in ``jaxinfo.io``) are deleted, so no
  partial file is left (finished outputs were renamed into place atomically);
* one line ``jaxinfo: interrupted`` / ``jaxinfo: terminated`` goes to stderr;
* the process ends with ``os._exit(128 + signal)``, without unwinding JAX's runtime threads,
  whose teardown during a computation can crash.

The signal is seen immediately even while the main thread waits inside XLA: the C-level handler
writes the signal number to a wake-up pipe (:func:`signal.set_wakeup_fd`) read by a daemon thread.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

_MESSAGES = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}
_lock = threading.Lock()
_installed = False


def _remove_pending_outputs() -> None:
    io = sys.modules.get("jaxinfo.io")
    pending = getattr(io, "_PENDING_OUTPUTS", None)
    for path in list(pending or ()):
        try:
            os.unlink(path)
        except OSError:
            pass


def _die(signum: int) -> None:
    if not _lock.acquire(blocking=False):  # the other path is already ending the process
        time.sleep(10)
        os._exit(128 + signum)
    try:
        _remove_pending_outputs()
        os.write(2, f"\njaxinfo: {_MESSAGES.get(signum, 'killed')}\n".encode())
    finally:
        os._exit(128 + signum)


def _handler(signum, frame) -> None:
    _die(signum)


def _watch(fd: int) -> None:
    while True:
        try:
            data = os.read(fd, 1)
        except OSError:
            return
        if not data:
            return
        if data[0] in _MESSAGES:
            _die(data[0])


def install_signal_handlers() -> None:
    """Makes SIGINT and SIGTERM end the process at once with one line, status 130 or 143.

    Only in the main thread, once per process; the command line calls it first thing.
    """
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(read_end,), name="jaxinfo-signals", daemon=True).start()
    for signum in _MESSAGES:
        signal.signal(signum, _handler)
    _installed = True


def main() -> int:
    """The ``jaxinfo`` console script: installs the signal handlers, then runs the command."""
    install_signal_handlers()
    from jaxinfo.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
