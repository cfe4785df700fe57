"""Training runs: one at a time per model directory (and, with several workers,
only in the leader), on demand or when the latest version is due."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from chatdash.services.recommender.artifacts import (
    LATEST,
    ArtifactInfo,
    default_model_dir,
    latest_params,
    publish,
    published,
    save,
)
from chatdash.services.recommender.interactions import ProgressFn, load_interactions
from chatdash.services.recommender.model import Params, RecommenderError, fit
from chatdash.services.recommender.tuning import tune as tune_params

#: Seconds the tuning may take by default (about five candidates at 1M interactions on 2 cores).
TUNE_BUDGET = 120.0

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _training_lock(out_dir: Path, *, blocking: bool) -> Iterator[bool]:
    """One training at a time per model directory, across processes (workers, CLI)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".train.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def train(
    engine: Engine, out_dir: Path | None = None, progress: ProgressFn | None = None, params: Params | None = None,
    *, tune: bool = False, budget: float = TUNE_BUDGET,
) -> ArtifactInfo:
    """Train on everything in the database and publish a new version; waits for a
    training already running on the same directory.

    With `tune`, the parameters (starting from `params`) are first chosen by a time
    split of the store's own history within `budget` seconds (`tuning.tune`); what was
    tried, chosen and scored is stored with the version. `progress(step, done, total)`
    is called for the steps "load", "tune", "model", "relations" and "save".
    Raises RecommenderError when there is nothing to learn from.
    """
    out_dir = out_dir or default_model_dir()
    with _training_lock(out_dir, blocking=True):
        return _train(engine, out_dir, progress, params, tune=tune, budget=budget)


def _train(
    engine: Engine, out_dir: Path, progress: ProgressFn | None, params: Params | None, *, tune: bool = False,
    budget: float = TUNE_BUDGET,
) -> ArtifactInfo:
    report = progress or (lambda _step, _done, _total: None)
    start = time.perf_counter()
    data = load_interactions(engine, progress=report)
    tuning = tune_params(data, params, budget=budget, progress=report) if tune and data.count else None
    if tuning is not None:
        params = tuning.params
    elif tune:
        log.info("recommender not tuned: too little order history to hold some out")
    recommender = fit(data, params, report)
    report("save", 0, 1)
    info = save(recommender, out_dir, seconds=time.perf_counter() - start,
                tuning=tuning.as_dict() if tuning is not None else None)
    publish(engine, info)  # every worker loads it from the database
    report("save", 1, 1)
    return info


def is_due(engine: Engine, out_dir: Path, every: timedelta | None) -> bool:
    """Nothing was trained yet or, with `every`, the latest version is older than that."""
    # The database knows what any worker trained; the directory, what this one did.
    newest = published(engine)
    created = newest[1] if newest else None
    if created is None:
        try:
            created = datetime.fromisoformat(json.loads((out_dir / LATEST).read_text())["created_at"])
        except (FileNotFoundError, KeyError, ValueError):
            created = None
    return created is None or (every is not None and datetime.now(UTC) - created >= every)


def train_if_due(
    engine: Engine, out_dir: Path | None = None, every: timedelta | None = None, params: Params | None = None,
    progress: ProgressFn | None = None,
) -> ArtifactInfo | None:
    """Train when nothing was trained yet or, with `every`, when the latest version is
    older than that. Returns None when not due, when another process is training, or
    when there is no data yet. Meant for the app's start-up and schedule: without
    `params`, it keeps the parameters the latest version was trained with (a tuned
    store stays tuned until the next `train --tune`)."""
    out_dir = out_dir or default_model_dir()
    with _training_lock(out_dir, blocking=False) as acquired:
        if not acquired or not is_due(engine, out_dir, every):
            return None
        try:
            return _train(engine, out_dir, progress, params or latest_params(out_dir))
        except RecommenderError as exc:
            log.info("recommender not trained: %s", exc)
            return None
