"""Personalised recommendations and related products. No Reflex imports.

Training (`training.train`) reads every shopper's interactions from the database
(`interactions`) — product views, cart adds, purchases — fits an `implicit` ALS
model on them (`model.fit`; or EASE^R, a closed-form item-item model, with
`Params(model="ease")`, for stores up to `EASE_MAX_ITEMS` products; or, with
`Params(model="softmax")`, a multinomial model of each shopper's next first
purchases, `softmax.py`, fitted on the store's own later first purchases; or, with
`Params(model="fused")`, both ALS and the softmax model in one version, EASE^R as a
third part with `fusion_ease` and similar shoppers' purchases with `fusion_neighbours`,
their rankings combined per request by `model.fuse`)
and three co-occurrence tables ("bought also", "same order", "viewed together";
`relations`), and writes a versioned artifact directory, switching `latest.json`
atomically (`artifacts.save`). With `tune=True` (the `train` command's default) it first picks the parameters on a
time split of the store's own orders (`tuning.tune`: the latest 20% held out,
scored on first purchases) and stores what it tried, chose and scored — beside
popularity's score — in the version's manifest (`artifacts.read_manifest`).

Serving (`artifacts.RecommenderStore.get()` -> `model.Recommender`) keeps the
artifacts in memory and picks up a newer training without a restart.
`Recommender.recommend` reads the shopper's full current history with a few
indexed queries (`interactions.load_history`) and recalculates the shopper's
factors from it (EASE: multiplies their row by the saved item-item weights;
softmax: sums the embeddings of their products; fused: each of its parts, similar
shoppers found among the rows the version keeps), so
views made a second ago count without retraining.
`Recommender.related` is a pure in-memory lookup. `serving.recommend_for` /
`serving.related_for` are the entry points for the UI: they use the
process-wide store and still answer before the first training.

The names below are re-exported so callers keep writing `recommender.train(...)`.
"""

from chatdash.services.recommender.artifacts import (
    ARTIFACT_FORMAT,
    LATEST,
    ArtifactInfo,
    RecommenderStore,
    default_model_dir,
    latest_params,
    latest_version,
    load_latest,
    load_version,
    read_manifest,
    save,
)
from chatdash.services.recommender.interactions import (
    CART_WEIGHT,
    PURCHASE_WEIGHT,
    SESSION_GAP,
    VIEW_WEIGHT,
    Interactions,
    ProgressFn,
    ShopperHistory,
    load_history,
    load_interactions,
    sessionize,
)
from chatdash.services.recommender.model import (
    EASE_MAX_ITEMS,
    Params,
    Recommendation,
    Recommender,
    RecommenderError,
    bm25,
    confidence,
    fit,
    weighted_interactions,
)
from chatdash.services.recommender.relations import RELATIONS, Related, RelatedItem, RelationTable, cooccurrence
from chatdash.services.recommender.serving import get_store, recommend_for, related_for
from chatdash.services.recommender.training import TUNE_BUDGET, train, train_if_due
from chatdash.services.recommender.tuning import Quality, Split, Tuning, time_split, tune

__all__ = [
    "ARTIFACT_FORMAT",
    "CART_WEIGHT",
    "EASE_MAX_ITEMS",
    "LATEST",
    "PURCHASE_WEIGHT",
    "RELATIONS",
    "SESSION_GAP",
    "TUNE_BUDGET",
    "VIEW_WEIGHT",
    "ArtifactInfo",
    "Interactions",
    "Params",
    "ProgressFn",
    "Quality",
    "Recommendation",
    "Recommender",
    "RecommenderError",
    "RecommenderStore",
    "Related",
    "RelatedItem",
    "RelationTable",
    "ShopperHistory",
    "Split",
    "Tuning",
    "bm25",
    "confidence",
    "cooccurrence",
    "default_model_dir",
    "fit",
    "get_store",
    "latest_params",
    "latest_version",
    "load_history",
    "load_interactions",
    "load_latest",
    "load_version",
    "read_manifest",
    "recommend_for",
    "related_for",
    "save",
    "sessionize",
    "time_split",
    "train",
    "train_if_due",
    "tune",
    "weighted_interactions",
]
