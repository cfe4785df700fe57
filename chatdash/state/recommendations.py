"""Settings → Recommendations (the owner's): the live model's card, and Retrain,
whose progress arrives as `TrainingChanged` pushes on the "recommender" topic."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

from chatdash import live
from chatdash.events import TrainingChanged, TrainingRunView
from chatdash.models import Role, RunStatus
from chatdash.services.recommender import card as model_card
from chatdash.services.recommender import runs
from chatdash.services.recommender.serving import get_store
from chatdash.settings import get_settings
from chatdash.state.auth import AuthState, admin_event

STEP_LABELS = {
    "load": "Reading the store's history",
    "tune": "Trying parameters on held-out orders",
    "model": "Fitting the model",
    "relations": "Building the related-products lists",
    "save": "Publishing the new version",
}
PARAM_LABELS = {
    "model": "Model (als, ease, softmax, or fused: ALS + softmax, and EASE^R with a share)",
    "factors": "Factors",
    "iterations": "Iterations",
    "regularization": "Regularization (× shoppers per product)",
    "alpha": "Confidence alpha",
    "bm25_b": "BM25 normalisation (b)",
    "purchase_once": "Repeat purchases count once",
    "popularity_weight": "Recent popularity weight",
    "related_weight": "Related-products weight",
    "softmax_l2": "Softmax L2 penalty",
    "fusion": "Fusion (rank or score)",
    "fusion_weight": "Softmax share of the fused ranking (against ALS)",
    "fusion_ease": "EASE^R share of the fused ranking",
    "fusion_neighbours": "Similar shoppers' share of the fused ranking",
}
MODEL, POPULARITY, ITEM_ITEM = "This model", "Popularity", "Item-item"


@dataclasses.dataclass
class ParamRow:
    name: str = ""
    value: str = ""


def _date(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%-d %b %Y, %H:%M UTC")


def _count(n: int) -> str:
    return f"{n:,}"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _read() -> tuple[model_card.ModelCard | None, TrainingRunView | None]:
    return model_card.model_card(get_settings().retrain_hours), runs.latest_run()


def _card_when_live(event: TrainingChanged) -> model_card.ModelCard | None:
    """A push's load (in a thread, once per event for every tab): the new card, when
    the run published a version; nothing to read while it runs."""
    if event.run.status != RunStatus.SUCCEEDED:
        return None
    return model_card.model_card(get_settings().retrain_hours)


class RecommendationsState(AuthState):
    has_model: bool = False
    version: str = ""
    trained_at: str = ""
    trained_seconds: str = ""
    shoppers: str = ""
    products: str = ""
    interactions: str = ""
    params: list[ParamRow] = []
    # The holdout chart: one row per metric, one key per method.
    chart: list[dict[str, Any]] = []
    has_holdout: bool = False
    has_item_item: bool = False
    model_ndcg: str = ""
    popularity_ndcg: str = ""
    model_precision: str = ""
    popularity_precision: str = ""
    lift: str = ""
    holdout_note: str = ""
    next_retrain: str = ""

    # The newest training run, as its pushes tell it.
    run_status: str = ""
    run_step: str = ""
    run_percent: int = 0
    run_note: str = ""
    run_error: str = ""
    # What the last press of Retrain was told ("not enough history", "already running").
    notice: str = ""
    _run_id: int = 0

    @admin_event(role=Role.OWNER)
    async def load(self):
        live.subscribe(self, live.RECOMMENDER)  # before reading: nothing falls in between
        found, run = await asyncio.to_thread(_read)
        self._show_card(found)
        self._run_id = 0
        self._show_run(run)
        self.notice = ""

    @admin_event(role=Role.OWNER)
    async def retrain(self):
        admin = self._checked_admin
        who = (admin.name or admin.email) if admin is not None else ""
        try:
            run = await asyncio.to_thread(runs.start_retrain, who, budget=get_settings().retrain_budget_seconds,
                                          store=get_store())
        except runs.NotEnoughHistory as exc:
            self.notice = str(exc)
            return
        except runs.AlreadyRunning as exc:
            self.notice = str(exc)
            self._show_run(exc.run)
            return
        self.notice = ""
        self._show_run(run)

    # ----- pushed --------------------------------------------------------
    @live.on(TrainingChanged, topic=live.recommender_topic, load=_card_when_live)
    def _on_training(self, event: TrainingChanged, found: model_card.ModelCard | None) -> None:
        self._show_run(event.run)
        if found is not None:
            self._show_card(found)

    # ----- view ------------------------------------------------------------
    def _show_run(self, run: TrainingRunView | None) -> None:
        if run is None:
            self.run_status = ""
            return
        if run.id == self._run_id and self.run_status == RunStatus.RUNNING == run.status \
                and run.percent < self.run_percent:
            return  # an older report than the one shown
        if run.id < self._run_id:
            return
        self._run_id = run.id
        self.run_status = run.status
        self.run_percent = run.percent
        label = STEP_LABELS.get(run.step, "Starting")
        self.run_step = f"{label} ({run.step_done}/{run.step_total})" if run.step_total > 1 else label
        who = "the schedule" if run.trigger == runs.SCHEDULE else (run.requested_by or "an owner")
        if run.status == RunStatus.RUNNING:
            self.run_note = f"Started {run.started_at.astimezone(UTC):%H:%M} UTC by {who}."
        elif run.status == RunStatus.SUCCEEDED:
            self.run_note = f"Last training ({who}) finished {_date(run.finished_at)}: version {run.version} is live."
        else:
            self.run_note = f"Last training ({who}) failed {_date(run.finished_at or run.started_at)}."
        self.run_error = run.error if run.status == RunStatus.FAILED else ""
        if run.status != RunStatus.RUNNING:
            self.notice = ""

    def _show_card(self, found: model_card.ModelCard | None) -> None:
        self.has_model = found is not None
        if found is None:
            self.chart, self.params, self.has_holdout = [], [], False
            return
        self.version = found.version
        self.trained_at = _date(found.trained_at)
        self.trained_seconds = f"{found.seconds:.1f} s"
        self.shoppers, self.products = _count(found.shoppers), _count(found.products)
        self.interactions = _count(found.interactions)
        self.params = [ParamRow(PARAM_LABELS.get(k, k), _value(v)) for k, v in found.params]
        if found.next_retrain is None:
            self.next_retrain = "Off (retrain_hours is 0): only Retrain trains."
        elif found.next_retrain <= datetime.now(UTC):
            self.next_retrain = "Due now: the schedule checks every 10 minutes."
        else:
            self.next_retrain = _date(found.next_retrain)
        h = found.holdout
        self.has_holdout = h is not None
        if h is None:
            self.chart, self.has_item_item, self.lift = [], False, ""
            self.holdout_note = "Not measured: too little order history to hold some out."
            return
        self.has_item_item = h.item_item is not None
        self.chart = [
            {"metric": metric, MODEL: round(get(h.model), 4), POPULARITY: round(get(h.popularity), 4),
             **({ITEM_ITEM: round(get(h.item_item), 4)} if h.item_item is not None else {})}
            for metric, get in (("ndcg@10", lambda s: s.ndcg), ("precision@10", lambda s: s.precision))
        ]
        self.model_ndcg, self.popularity_ndcg = f"{h.model.ndcg:.4f}", f"{h.popularity.ndcg:.4f}"
        self.model_precision, self.popularity_precision = f"{h.model.precision:.4f}", f"{h.popularity.precision:.4f}"
        self.lift = f"{h.model.ndcg / h.popularity.ndcg:.2f}× popularity" if h.popularity.ndcg > 0 else ""
        note = (f"Scored on the orders after {h.cutoff.astimezone(UTC):%-d %b %Y} ({_count(h.shoppers)} shoppers' "
                f"first purchases there); {h.candidates} settings tried in {h.seconds:.0f} s.")
        if h.version != found.version:
            note += f" Measured when version {h.version} was tuned; the schedule retrains with its parameters."
        self.holdout_note = note
