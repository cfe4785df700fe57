"""Training runs the model card shows: one at a time across workers (a database
row claim), progress recorded and announced after each commit, the outcome
recorded, the new version live in the trainer's store when the run says so; and
the card read from the versions in the database."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chatdash import events
from chatdash.events import TrainingChanged
from chatdash.models import ModelArtifact, RunStatus, TrainingRun, utcnow
from chatdash.services import recommender as rec
from chatdash.services.demo_grocery import generate_grocery_data
from chatdash.services.recommender import card, runs
from chatdash.services.recommender.model import RecommenderError
from tests.test_recommender import PARAMS, StoreBuilder

BUDGET = 5.0


@pytest.fixture
def grocery(engine: Engine) -> Engine:
    generate_grocery_data(engine, store_url="http://localhost:3000/store", seed=3, products=150, shoppers=60)
    return engine


class _Watcher:
    """Every TrainingChanged delivered after a commit, and a wait for the one that ends a run."""

    def __init__(self) -> None:
        self.seen: list[events.TrainingRunView] = []
        self._ended = threading.Event()

    def __call__(self, batch: list[events.DomainEvent]) -> None:
        for event in batch:
            if isinstance(event, TrainingChanged):
                self.seen.append(event.run)
                if event.run.status != RunStatus.RUNNING:
                    self._ended.set()

    def wait_until_ended(self, timeout: float = 120.0) -> events.TrainingRunView:
        assert self._ended.wait(timeout), f"the run did not end; saw {self.seen[-3:]}"
        return self.seen[-1]


@pytest.fixture
def watcher():
    w = _Watcher()
    stop = events.listen(w)
    yield w
    stop()


def _newest_manifest(engine: Engine) -> dict:
    with Session(engine) as s:
        row = s.exec(select(ModelArtifact).order_by(col(ModelArtifact.created_at).desc())).first()
        return json.loads(row.manifest)


def test_percent_follows_the_steps_to_the_end() -> None:
    assert runs.percent("load", 0, 5, tuned=True) == 0
    assert runs.percent("tune", 0, 9, tuned=True) == 10
    assert runs.percent("tune", 9, 9, tuned=True) == 60
    assert runs.percent("model", 15, 15, tuned=False) == 70
    assert runs.percent("save", 1, 1, tuned=True) == 100
    totals = (("load", 5), ("tune", 9), ("model", 15), ("relations", 3), ("save", 1))
    steps = [(step, d, total) for step, total in totals for d in range(total + 1)]
    seen = [runs.percent(*s, tuned=True) for s in steps]
    assert seen == sorted(seen) and seen[-1] == 100


def test_retrain_shows_progress_then_the_new_version_live_in_the_trainers_store(
        grocery: Engine, tmp_path: Path, watcher: _Watcher) -> None:
    store = rec.RecommenderStore(tmp_path / "serving", engine=grocery)
    started = runs.start_retrain("Olive Owner", engine=grocery, budget=BUDGET, out_dir=tmp_path / "models",
                                 store=store)
    assert started.status == RunStatus.RUNNING and started.percent == 0 and started.requested_by == "Olive Owner"

    done = watcher.wait_until_ended()
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert done.percent == 100 and done.trigger == runs.MANUAL and done.version
    running = [r for r in watcher.seen if r.status == RunStatus.RUNNING]
    percents = [r.percent for r in running]
    assert percents == sorted(percents) and 0 < max(percents) < 100  # it moved, and only forward
    assert {"load", "tune", "model", "relations", "save"} <= {r.step for r in running}
    # When the run says done, its version is published and already served by this worker.
    assert _newest_manifest(grocery)["version"] == done.version
    assert store._current is not None and store._current.version == done.version
    assert runs.latest_run(grocery) == done


def test_only_one_training_runs_at_a_time(grocery: Engine, tmp_path: Path) -> None:
    first = runs.claim(grocery, runs.MANUAL, "Olive")
    with pytest.raises(runs.AlreadyRunning) as refused:
        runs.start_retrain("Second Owner", engine=grocery, budget=BUDGET, out_dir=tmp_path)
    assert refused.value.run.id == first.id and refused.value.run.requested_by == "Olive"
    assert "already running" in str(refused.value)
    # The schedule stays out of its way too.
    assert runs.retrain_if_due(grocery, None, out_dir=tmp_path) is None
    assert rec.latest_version(tmp_path) is None
    runs.finish(grocery, first.id, error="stopped by the test")
    again = runs.claim(grocery, runs.MANUAL, "Second Owner")
    assert again.id != first.id


def test_workers_claiming_together_get_one_run_on_postgresql(pg_engine: Engine) -> None:
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def worker(i: int) -> None:
        barrier.wait()
        try:
            runs.claim(pg_engine, runs.MANUAL, f"owner {i}")
            outcomes.append("claimed")
        except runs.AlreadyRunning:
            outcomes.append("refused")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["claimed"] + ["refused"] * 5
    with Session(pg_engine) as s:
        assert len(s.exec(select(TrainingRun).where(TrainingRun.status == RunStatus.RUNNING)).all()) == 1


def test_a_run_whose_worker_stopped_shows_as_interrupted_and_frees_the_claim(grocery: Engine) -> None:
    dead = runs.claim(grocery, runs.MANUAL, "Olive")
    with Session(grocery) as s:
        s.execute(update(TrainingRun).where(TrainingRun.id == dead.id)
                  .values(heartbeat_at=utcnow() - runs.STALE_AFTER - timedelta(seconds=1)))
        s.commit()
    shown = runs.latest_run(grocery)
    assert shown.status == RunStatus.FAILED and shown.error == runs.INTERRUPTED
    fresh = runs.claim(grocery, runs.MANUAL, "Olive")
    with Session(grocery) as s:
        old = s.get(TrainingRun, dead.id)
        assert old.status == RunStatus.FAILED and old.error == runs.INTERRUPTED and old.finished_at is not None
    assert runs.latest_run(grocery).id == fresh.id


def test_a_store_without_orders_is_told_there_is_not_enough_history(engine: Engine, tmp_path: Path) -> None:
    b = StoreBuilder(engine)
    b.view(b.shopper(), b.product("p1", "Cat"))  # views, but nobody has ordered
    with pytest.raises(runs.NotEnoughHistory, match="Not enough history to train"):
        runs.start_retrain("Olive", engine=engine, budget=BUDGET, out_dir=tmp_path)
    assert runs.latest_run(engine) is None


def test_a_failed_training_records_its_error(grocery: Engine, watcher: _Watcher) -> None:
    def nothing_to_learn(_progress):
        raise RecommenderError("no product views, cart adds or purchases to learn from yet")

    def broken(progress):
        progress("load", 1, 5)
        raise ValueError("disk full")

    ended = runs.run_training(grocery, runs.claim(grocery, runs.MANUAL), nothing_to_learn, tuned=True)
    assert ended.status == RunStatus.FAILED and ended.error.startswith("no product views")
    ended = runs.run_training(grocery, runs.claim(grocery, runs.MANUAL), broken, tuned=True)
    assert ended.status == RunStatus.FAILED and ended.error == "Training failed: ValueError: disk full"
    assert watcher.seen[-1] == ended == runs.latest_run(grocery)
    runs.claim(grocery, runs.MANUAL)  # a failure frees the claim


def test_the_schedule_retrains_as_a_run_with_the_tuned_parameters(grocery: Engine, tmp_path: Path) -> None:
    tuned = rec.train(grocery, tmp_path, params=PARAMS, tune=True, budget=BUDGET)
    assert runs.retrain_if_due(grocery, timedelta(hours=1), out_dir=tmp_path) is None  # not due
    run = runs.retrain_if_due(grocery, timedelta(0), out_dir=tmp_path)
    assert run.status == RunStatus.SUCCEEDED and run.trigger == runs.SCHEDULE and run.version != tuned.version

    shown = card.model_card(24, engine=grocery)
    assert shown.version == run.version
    assert shown.next_retrain == shown.trained_at + timedelta(hours=24)
    # The schedule does not tune: the holdout shown is the tuned version's, and says so.
    holdout = tuned.tuning["holdout"]
    assert shown.holdout.version == tuned.version
    assert shown.holdout.model.ndcg == holdout["model"]["ndcg@10"]
    assert shown.holdout.popularity.precision == holdout["popularity"]["precision@10"]


def test_the_card_shows_what_the_newest_version_was_trained_on_and_with(grocery: Engine, tmp_path: Path) -> None:
    assert card.model_card(24, engine=grocery) is None  # nothing trained yet
    info = rec.train(grocery, tmp_path, tune=True, budget=BUDGET)
    shown = card.model_card(0, engine=grocery)
    assert (shown.version, shown.shoppers, shown.products, shown.interactions) == (
        info.version, info.shoppers, info.products, info.interactions)
    assert shown.next_retrain is None  # the schedule is off
    model = info.params["model"]
    assert dict(shown.params) == {k: info.params[k] for k in card.SHOWN_PARAMS
                                  if model in card.MODEL_PARAMS.get(k, (model,))}
    assert shown.params[0] == ("model", model)
    h = info.tuning["holdout"]
    assert shown.holdout.version == info.version and shown.holdout.shoppers == h["shoppers"]
    assert (shown.holdout.model.ndcg, shown.holdout.model.precision) == (h["model"]["ndcg@10"],
                                                                         h["model"]["precision@10"])
    assert shown.holdout.candidates == len(info.tuning["candidates"]) and shown.holdout.item_item is None


def test_the_card_reads_versions_published_before_manifests_had_a_column(grocery: Engine, tmp_path: Path) -> None:
    info = rec.train(grocery, tmp_path, params=PARAMS)
    with Session(grocery) as s:
        s.execute(update(ModelArtifact).values(manifest=None))
        s.commit()
    assert card.model_card(24, engine=grocery).version == info.version
