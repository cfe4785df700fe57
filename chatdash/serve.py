"""`./dev serve`: `reflex run --env prod --single-port` (or the `reflex run`
arguments given), with a worker that dies replaced instead of the whole server
stopping.

Reflex runs its production server, granian, with several worker processes
(`GRANIAN_WORKERS`) but without granian's `respawn_failed_workers`: one worker
killed (SIGKILL, the kernel's out-of-memory killer, a crash in a native
library) made granian stop every worker and the app exit. Here granian respawns
it after a second; the dead worker's shoppers and staff reconnect (their pages
retry on their own) to the workers still running or to the new one, and their
state is in Redis. Granian still stops if workers crash in a loop (two deaths
of one worker within 5.5 s), which is the right answer to a worker that cannot
start.

    python -m chatdash.serve                      # what ./dev serve runs
    python -m chatdash.serve --backend-only --backend-port 8001
"""

from __future__ import annotations

import sys
from typing import Any

RESPAWN_INTERVAL_SECONDS = 1.0
DEFAULT_ARGS = ["--env", "prod", "--single-port"]


def respawn_failed_workers() -> None:
    """Make every granian server this process starts respawn a failed worker,
    unless the caller says otherwise. Reflex builds the server itself
    (reflex.utils.exec.run_granian_backend_prod), so its defaults are the only
    place to say it."""
    from granian.server import Server

    if getattr(Server.__init__, "_chatdash_respawn", False):
        return
    original = Server.__init__

    def __init__(self: Any, *args: Any, respawn_failed_workers: bool = True,
                 respawn_interval: float = RESPAWN_INTERVAL_SECONDS, **kwargs: Any) -> None:
        original(self, *args, respawn_failed_workers=respawn_failed_workers,
                 respawn_interval=respawn_interval, **kwargs)

    __init__._chatdash_respawn = True  # type: ignore[attr-defined]
    Server.__init__ = __init__  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--env" not in args:
        args = [*DEFAULT_ARGS, *args] if "--backend-only" not in args else ["--env", "prod", *args]
    respawn_failed_workers()
    from reflex.reflex import cli

    sys.argv = ["reflex", "run", *args]
    cli()


if __name__ == "__main__":
    main()
