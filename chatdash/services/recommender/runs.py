"""Training runs the staff can watch: Settings → Recommendations' Retrain and the
schedule. No Reflex.

- **One at a time across every worker**: a run is a `TrainingRun` row, and the
  database refuses a second `running` row (a partial unique index), so two
  workers that press Retrain together get one training and one "already
  running". A runner renews the row's heartbeat while it lives; a row whose
  heartbeat stopped (the worker died) is closed as interrupted by the next claim.
- **Progress** from the training's callback is written to the row (at most every
  `PROGRESS_EVERY` seconds per step) and announced as `TrainingChanged` after
  each commit; `chatdash.live` carries it to the screens, Redis to other workers.
- **The outcome** is recorded on the row: the version it published (loaded by
  this worker before the run is announced as done), or the error.
- Training runs in a thread of its own, never on the event loop nor in the
  small default pool the handlers' database reads share.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from chatdash import events
from chatdash.db import get_engine, session_scope, write_scope
from chatdash.events import TrainingChanged, TrainingRunView
from chatdash.models import OrderLine, RunStatus, TrainingRun, utcnow
from chatdash.services.recommender.artifacts import ArtifactInfo, RecommenderStore, default_model_dir
from chatdash.services.recommender.interactions import ProgressFn
from chatdash.services.recommender.model import RecommenderError
from chatdash.services.recommender.training import TUNE_BUDGET, is_due, train, train_if_due

log = logging.getLogger(__name__)

MANUAL = "manual"
SCHEDULE = "schedule"
#: A running row not renewed for this long belongs to a worker that stopped.
STALE_AFTER = timedelta(seconds=60)
HEARTBEAT_SECONDS = 5.0
#: Within one step, progress is written (and pushed) at most this often.
PROGRESS_EVERY = 0.25
KEEP_RUNS = 50
NOT_ENOUGH_HISTORY = "Not enough history to train: the store has no orders yet."
INTERRUPTED = "Interrupted: the worker running it stopped."

#: Each step's share of the whole run, in percent (from, to): with and without tuning.
STEP_SHARES: dict[bool, dict[str, tuple[int, int]]] = {
    True: {"load": (0, 10), "tune": (10, 60), "model": (60, 85), "relations": (85, 95), "save": (95, 100)},
    False: {"load": (0, 15), "model": (15, 70), "relations": (70, 90), "save": (90, 100)},
}


class AlreadyRunning(Exception):
    """Another training holds the claim; `run` is it."""

    def __init__(self, run: TrainingRunView) -> None:
        super().__init__(f"A training is already running (started {run.started_at:%H:%M} UTC).")
        self.run = run


class NotEnoughHistory(Exception):
    def __init__(self) -> None:
        super().__init__(NOT_ENOUGH_HISTORY)


def view(row: TrainingRun) -> TrainingRunView:
    stale = row.status == RunStatus.RUNNING and utcnow() - row.heartbeat_at > STALE_AFTER
    return TrainingRunView(
        id=row.id, status=RunStatus.FAILED if stale else row.status, trigger=row.trigger,
        requested_by=row.requested_by, started_at=row.started_at, finished_at=row.finished_at,
        step=row.step, step_done=row.step_done, step_total=row.step_total, percent=row.percent,
        error=INTERRUPTED if stale else row.error, version=row.version,
    )


def percent(step: str, done: int, total: int, *, tuned: bool) -> int:
    """The whole run's percent when `step` is `done` of `total`."""
    start, end = STEP_SHARES[tuned].get(step, (0, 0))
    share = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
    return round(start + (end - start) * share)


def latest_run(engine: Engine | None = None) -> TrainingRunView | None:
    """The newest run (a running one whose worker stopped shows as interrupted)."""
    with session_scope(engine) as session:
        row = session.exec(select(TrainingRun).order_by(col(TrainingRun.id).desc()).limit(1)).first()
        return view(row) if row is not None else None


def has_orders(engine: Engine | None = None) -> bool:
    with session_scope(engine) as session:
        return session.exec(select(OrderLine.id).limit(1)).first() is not None


# --------------------------------------------------------------------------- the claim


def claim(engine: Engine, trigger: str, requested_by: str = "") -> TrainingRunView:
    """Start a run, or raise AlreadyRunning with the one that holds the claim."""
    for _attempt in range(3):
        try:
            with write_scope(engine) as session:
                _close_stale(session)
                running = _running(session)
                if running is not None:
                    raise AlreadyRunning(view(running))
                row = TrainingRun(trigger=trigger, requested_by=requested_by[:320], status=RunStatus.RUNNING)
                session.add(row)
                session.flush()  # the unique index refuses a second running row here, or at commit
                claimed = view(row)
                events.record(session, TrainingChanged(claimed))
                _prune(session, row.id)
            return claimed
        except IntegrityError:
            continue  # a worker claimed between our read and our insert: read theirs
    raise AlreadyRunning(latest_run(engine))


def _running(session: Session) -> TrainingRun | None:
    return session.exec(select(TrainingRun).where(col(TrainingRun.status) == RunStatus.RUNNING)).first()


def _close_stale(session: Session) -> None:
    stale = session.exec(
        select(TrainingRun).where(col(TrainingRun.status) == RunStatus.RUNNING,
                                  col(TrainingRun.heartbeat_at) < utcnow() - STALE_AFTER)
    ).all()
    for row in stale:
        row.status, row.error, row.finished_at = RunStatus.FAILED, INTERRUPTED, utcnow()
        session.add(row)
        session.flush()
        events.record(session, TrainingChanged(view(row)))


def _prune(session: Session, newest_id: int) -> None:
    session.execute(delete(TrainingRun).where(col(TrainingRun.id) <= newest_id - KEEP_RUNS))


# --------------------------------------------------------------------------- progress and outcome


class _Progress:
    """The training's `progress(step, done, total)`: written to the run's row and
    pushed, at most every PROGRESS_EVERY seconds within a step (a step's first and
    last report always)."""

    def __init__(self, engine: Engine, run_id: int, *, tuned: bool) -> None:
        self.engine, self.run_id, self.tuned = engine, run_id, tuned
        self._step = ""
        self._written = 0.0
        self._percent = 0

    def __call__(self, step: str, done: int, total: int) -> None:
        now = time.monotonic()
        if step == self._step and 0 < done < total and now - self._written < PROGRESS_EVERY:
            return
        self._step, self._written = step, now
        # Never backwards: a step left out (no tuning on a short history) only jumps ahead.
        self._percent = max(self._percent, percent(step, done, total, tuned=self.tuned))
        try:
            with write_scope(self.engine) as session:
                row = session.get(TrainingRun, self.run_id)
                if row is None or row.status != RunStatus.RUNNING:
                    return
                row.step, row.step_done, row.step_total = step[:32], int(done), int(total)
                row.percent, row.heartbeat_at = min(self._percent, 99), utcnow()
                session.add(row)
                session.flush()
                events.record(session, TrainingChanged(view(row)))
        except Exception:  # a progress bar never stops the training
            log.warning("could not record the training's progress", exc_info=True)


def _heartbeat(engine: Engine, run_id: int, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            with write_scope(engine) as session:
                session.execute(update(TrainingRun)
                                .where(col(TrainingRun.id) == run_id, col(TrainingRun.status) == RunStatus.RUNNING)
                                .values(heartbeat_at=utcnow()))
        except Exception:
            log.warning("could not renew the training's heartbeat", exc_info=True)


def finish(engine: Engine, run_id: int, *, version: str = "", error: str = "") -> TrainingRunView | None:
    """Record the outcome: the published version, or the error."""
    with write_scope(engine) as session:
        row = session.get(TrainingRun, run_id)
        if row is None:
            return None
        row.status = RunStatus.FAILED if error or not version else RunStatus.SUCCEEDED
        row.error, row.version = error[:1000], version
        row.finished_at = row.heartbeat_at = utcnow()
        if row.status == RunStatus.SUCCEEDED:
            row.percent = 100
        session.add(row)
        session.flush()
        done = view(row)
        events.record(session, TrainingChanged(done))
        return done


Work = Callable[[ProgressFn], ArtifactInfo | None]


def run_training(engine: Engine, run: TrainingRunView, work: Work, *, tuned: bool,
                 store: RecommenderStore | None = None) -> TrainingRunView | None:
    """Do `work(progress)` for the claimed `run` and record how it ended. With
    `store`, the new version is loaded into it before the run is announced done."""
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(engine, run.id, stop), daemon=True,
                            name=f"chatdash-train-heartbeat-{run.id}")
    beat.start()
    try:
        info = work(_Progress(engine, run.id, tuned=tuned))
        if info is None:
            return finish(engine, run.id, error="Nothing was trained: another training held the model "
                                                "directory, or there was nothing to learn from.")
        if store is not None:
            store.reload()
        return finish(engine, run.id, version=info.version)
    except RecommenderError as exc:
        return finish(engine, run.id, error=str(exc) or "Nothing to learn from.")
    except Exception as exc:
        log.exception("recommender training failed")
        return finish(engine, run.id, error=f"Training failed: {type(exc).__name__}: {exc}")
    finally:
        stop.set()


# --------------------------------------------------------------------------- the two ways in


def start_retrain(requested_by: str = "", *, engine: Engine | None = None, budget: float = TUNE_BUDGET,
                  out_dir: Path | None = None, store: RecommenderStore | None = None) -> TrainingRunView:
    """Retrain now, tuned on the store's own history, in a thread of its own; returns
    the claimed run at once. Raises NotEnoughHistory (no orders yet) or AlreadyRunning."""
    engine = engine or get_engine()
    if not has_orders(engine):
        raise NotEnoughHistory
    run = claim(engine, MANUAL, requested_by)
    out = out_dir or default_model_dir()

    def work(progress: ProgressFn) -> ArtifactInfo:
        return train(engine, out, progress, tune=True, budget=budget)

    threading.Thread(target=run_training, args=(engine, run, work), kwargs={"tuned": True, "store": store},
                     daemon=True, name=f"chatdash-train-{run.id}").start()
    return run


def retrain_if_due(engine: Engine | None = None, every: timedelta | None = None, *, out_dir: Path | None = None,
                   store: RecommenderStore | None = None) -> TrainingRunView | None:
    """The schedule: train when nothing is trained yet or the latest version is older
    than `every`, keeping the tuned parameters (`train_if_due`), as a run the model
    card shows. Returns the finished run, or None when not due or already running."""
    engine = engine or get_engine()
    out = out_dir or default_model_dir()
    if not is_due(engine, out, every):
        return None
    if not has_orders(engine):
        # Views alone: trained quietly as before; a run row every ten minutes that
        # says "no orders" would bury the card's last real run.
        train_if_due(engine, out, every)
        return None
    try:
        run = claim(engine, SCHEDULE)
    except AlreadyRunning:
        return None

    def work(progress: ProgressFn) -> ArtifactInfo | None:
        return train_if_due(engine, out, every, progress=progress)

    return run_training(engine, run, work, tuned=False, store=store)
