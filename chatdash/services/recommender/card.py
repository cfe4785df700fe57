"""The model card (Settings → Recommendations): what the live recommender was
trained on, with what, and how well it did on the store's held-out orders
against popularity. Read from the versions in the database (every worker's
truth), never from one worker's disk. No Reflex."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from chatdash.db import get_engine
from chatdash.services.recommender.artifacts import published_manifests

#: The parameters the card lists, in this order (the ones tuning moves, and the model's size).
SHOWN_PARAMS: tuple[str, ...] = (
    "model", "factors", "iterations", "regularization", "alpha", "bm25_b", "purchase_once", "popularity_weight",
    "related_weight", "softmax_l2", "fusion", "fusion_weight", "fusion_ease", "fusion_neighbours",
)
#: Shown only for the models that use them.
MODEL_PARAMS: dict[str, tuple[str, ...]] = {
    "softmax_l2": ("softmax", "fused"),
    "fusion": ("fused",),
    "fusion_weight": ("fused",),
    "fusion_ease": ("fused",),
    "fusion_neighbours": ("fused",),
}


@dataclass(frozen=True)
class Score:
    ndcg: float  # ndcg@10
    precision: float  # precision@10


@dataclass(frozen=True)
class Holdout:
    """The time split's verdict, from the version whose tuning measured it."""

    version: str
    measured_at: datetime
    cutoff: datetime
    shoppers: int
    model: Score
    popularity: Score
    item_item: Score | None
    candidates: int
    seconds: float


@dataclass(frozen=True)
class ModelCard:
    version: str
    trained_at: datetime
    seconds: float
    shoppers: int
    products: int
    interactions: int
    params: tuple[tuple[str, Any], ...]
    holdout: Holdout | None
    next_retrain: datetime | None  # None: the schedule is off


def model_card(retrain_hours: float, *, engine: Engine | None = None) -> ModelCard | None:
    """The newest version's card, or None before the first training. A version the
    schedule retrained with the tuned parameters carries the holdout of the version
    that tuned them (named on the card)."""
    manifests = published_manifests(engine or get_engine())
    if not manifests:
        return None
    latest = manifests[0]
    trained_at = datetime.fromisoformat(latest["created_at"])
    counts = latest.get("counts") or {}
    params = latest.get("params") or {}
    tuned = next((m for m in manifests if m.get("tuning")), None)
    return ModelCard(
        version=latest["version"],
        trained_at=trained_at,
        seconds=float(latest.get("seconds", 0.0)),
        shoppers=int(counts.get("shoppers", 0)),
        products=int(counts.get("products", 0)),
        interactions=int(counts.get("interactions", 0)),
        params=shown_params(params),
        holdout=_holdout(tuned) if tuned is not None else None,
        next_retrain=trained_at + timedelta(hours=retrain_hours) if retrain_hours > 0 else None,
    )


def shown_params(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The card's parameters of a version: SHOWN_PARAMS that it has and its model uses."""
    model = params.get("model", "als")
    return tuple((k, params[k]) for k in SHOWN_PARAMS if k in params and model in MODEL_PARAMS.get(k, (model,)))


def _score(d: dict[str, Any] | None) -> Score | None:
    if not d:
        return None
    return Score(float(d.get("ndcg@10", 0.0)), float(d.get("precision@10", 0.0)))


def _holdout(manifest: dict[str, Any]) -> Holdout:
    tuning = manifest["tuning"]
    h = tuning["holdout"]
    return Holdout(
        version=manifest["version"],
        measured_at=datetime.fromisoformat(manifest["created_at"]),
        cutoff=datetime.fromisoformat(h["cutoff"]),
        shoppers=int(h.get("shoppers", 0)),
        model=_score(h["model"]),
        popularity=_score(h["popularity"]),
        item_item=_score(h.get("item_item")),
        candidates=len(tuning.get("candidates") or ()),
        seconds=float(tuning.get("seconds", 0.0)),
    )
