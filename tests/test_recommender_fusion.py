"""The fused model (ALS and the softmax model of first purchases in one version, and EASE^R as
a third part with `fusion_ease`): its ranking, its fit, its artifact served and hot-reloaded by
a worker, and the tuner building it from the parts' fits without refitting them."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sqlalchemy.engine import Engine

from chatdash.services import recommender as rec
from chatdash.services.recommender import artifacts as rec_artifacts
from chatdash.services.recommender import model as rec_model
from chatdash.services.recommender import tuning as rec_tuning
from chatdash.services.recommender.softmax import SoftmaxWeights
from tests.test_recommender import PARAMS, ids
from tests.test_recommender_softmax import _taste_store, assert_serves_like, two_taste_store

#: The three-part candidate the tuner tries (tuning.FIT_CANDIDATES).
WITH_EASE = {"fusion_ease": 0.4, "fusion_weight": 0.67, "bm25_b": 0.5}

FUSED = replace(PARAMS, model="fused", softmax_factors=8)
FUSED_WITH_EASE = replace(FUSED, fusion_ease=0.4, fusion_weight=0.67, bm25_b=0.5)

# A hand-made model of 7 products: the shopper bought H. ALS ranks B first, then R; the softmax
# model ranks A first, then R; each ranks the other's favourite among the last. Fused, R leads.
H, R, B, F1, F2, F3, A = range(1, 8)


def _hand_made(params: rec.Params, ease: sp.csr_matrix | None = None,
               neighbours: sp.csr_matrix | None = None) -> rec.Recommender:
    n = 7
    item_factors = np.zeros((n, 2), np.float32)
    item_factors[[H - 1, R - 1, B - 1], 0] = [1.0, 0.9, 1.0]
    bias = np.zeros(n, np.float32)
    bias[[A - 1, R - 1, B - 1]] = [3.0, 2.0, -5.0]
    # The targets are 0, so the logits are the biases, whatever the context embeddings (one per product).
    softmax = SoftmaxWeights(bias, np.eye(n, dtype=np.float32), np.zeros((n, n), np.float32))
    return rec.Recommender(
        version="hand-made", params=replace(params, factors=2), regularization=0.1,
        product_ids=np.arange(1, n + 1), categories=["Cat"], item_category=np.zeros(n, np.int32),
        popularity=np.arange(n, 0, -1).astype(np.float32), item_factors=item_factors, relations={},
        softmax=None if params.model == "als" else softmax, ease=ease, neighbours=neighbours,
    )


HISTORY = rec.ShopperHistory(weights={H: rec.PURCHASE_WEIGHT}, bought={H})


@pytest.mark.parametrize("fusion", ["rank", "score"])
def test_the_fused_ranking_puts_first_what_both_parts_rank_high_where_each_alone_is_wrong(fusion: str) -> None:
    als = _hand_made(PARAMS).rank(HISTORY, 3)
    softmax = _hand_made(replace(PARAMS, model="softmax")).rank(HISTORY, 3)
    fused = _hand_made(replace(PARAMS, model="fused", fusion=fusion)).rank(HISTORY, 3)

    assert ids(als)[:2] == [B, R] and ids(softmax)[:2] == [A, R]
    assert ids(fused)[0] == R and fused[0].score == pytest.approx(1.0) and fused[0].reason == "personal"
    # The weight moves the ranking towards one part: all softmax is the softmax model's ranking.
    all_softmax = _hand_made(replace(PARAMS, model="fused", fusion=fusion, fusion_weight=1.0)).rank(HISTORY, 3)
    assert ids(all_softmax)[0] == A


def test_an_ease_part_has_its_share_of_the_fused_ranking() -> None:
    # EASE: what H's buyers also buy is B, then A (R and the fillers get nothing from H).
    ease = sp.csr_matrix((np.array([1.0, 0.5], np.float32), ([H - 1, H - 1], [B - 1, A - 1])), shape=(7, 7))
    params = replace(PARAMS, model="fused", fusion_weight=2 / 3, fusion_ease=0.4)  # softmax .4, ALS .2, EASE .4
    fused = _hand_made(params, ease)
    assert fused.fused and fused.ease is not None

    ranked = fused.rank(HISTORY, 6)
    # Ranks among the 6 products H's shopper may be shown (softmax / ALS / EASE, from 0): A is
    # 0 / 5 / 1, R 1 / 1 / 2, B 5 / 0 / 0. With ALS and the softmax model alone R led (above);
    # EASE's 0.4 puts A first, then R, then B.
    def rrf(softmax: int, als: int, ease_rank: int) -> float:
        return 0.4 / (10 + softmax) + 0.2 / (10 + als) + 0.4 / (10 + ease_rank)

    assert ids(ranked)[:3] == [A, R, B]
    assert ranked[1].score == pytest.approx(rrf(1, 1, 2) / rrf(0, 5, 1), rel=1e-5)
    assert ranked[2].score == pytest.approx(rrf(5, 0, 0) / rrf(0, 5, 1), rel=1e-5)
    # All of the say to EASE is EASE's own ranking; none is the two other parts' fusion.
    assert ids(_hand_made(replace(params, fusion_ease=1.0), ease).rank(HISTORY, 2)) == [B, A]
    assert ids(_hand_made(replace(params, fusion_ease=0.0), ease).rank(HISTORY, 1)) == [R]


def _shoppers(*baskets: list[int]) -> sp.csr_matrix:
    rows = np.zeros((len(baskets), 7), np.float32)
    for row, basket in enumerate(baskets):
        rows[row, [p - 1 for p in basket]] = 1.0
    return sp.csr_matrix(rows)


def test_similar_shoppers_have_their_share_of_the_fused_ranking() -> None:
    # H's shopper; a shopper with the same history (their own row at training time), one who
    # bought H and F1 (cosine 0.71), one H, F2 and F3 (0.58), and one nothing in common.
    neighbours = _shoppers([H], [H, F1], [H, F2, F3], [F3, A])
    params = replace(PARAMS, model="fused", fusion_neighbours=0.5, neighbour_shoppers=2)
    fused = _hand_made(params, neighbours=neighbours)
    # Similar by the softmax model's shopper vectors: here one context embedding per product
    # (see _hand_made), so a shopper's vector is their row and its cosines are the rows' cosines.
    assert fused._neighbour_space.shape == (4, 7)

    similar = fused._neighbour_scores(HISTORY.weights)
    # The two most similar besides the identical row, weighed by similarity squared: F1 0.5, F2 and F3 1/3.
    assert similar[F1 - 1] == pytest.approx(0.5, rel=1e-4) and similar[F3 - 1] == pytest.approx(1 / 3, rel=1e-4)
    assert similar[A - 1] < 1e-4 and similar[F2 - 1] > similar[F3 - 1]  # ties: the more popular first
    # Only the nearest: the identical row is skipped, so it is the H + F1 shopper, not a row with nothing new.
    nearest = _hand_made(replace(params, neighbour_shoppers=1), neighbours=neighbours)
    assert nearest._neighbour_scores(HISTORY.weights)[F1 - 1] == pytest.approx(0.5, rel=1e-4)

    # Ranks among the 6 products the shopper may be shown (softmax / ALS / similar shoppers, from
    # 0): F1 2 / 2 / 0, R 1 / 1 / 3. Half the say to similar shoppers puts F1 ahead of R.
    def rrf(softmax: int, als: int, similar_rank: int) -> float:
        return 0.25 / (10 + softmax) + 0.25 / (10 + als) + 0.5 / (10 + similar_rank)

    ranked = fused.rank(HISTORY, 3)
    assert ids(ranked)[:2] == [F1, R] and ranked[1].score == pytest.approx(rrf(1, 1, 3) / rrf(2, 2, 0), rel=1e-5)
    assert ids(_hand_made(replace(params, fusion_neighbours=1.0), neighbours=neighbours).rank(HISTORY, 3)) == [
        F1, F2, F3]
    # No share, or no rows: the two parts' fusion as before.
    assert ids(_hand_made(replace(params, fusion_neighbours=0.0), neighbours=neighbours).rank(HISTORY, 1)) == [R]
    assert ids(_hand_made(params).rank(HISTORY, 1)) == [R]


def test_rank_fusion_ranks_only_the_products_the_shopper_may_be_shown() -> None:
    softmax = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    als = np.array([5.0, 1.0, 2.0, 3.0, 4.0])
    # Product 0, first in both, is banned (bought): the others' ranks start at 0, and it scores 0.
    banned = np.array([True, False, False, False, False])
    fused = rec_model.fuse([(softmax, 0.5), (als, 0.5)], "rank", 10.0, banned)
    expected = [0.0, 0.5 / 10 + 0.5 / 13, 0.5 / 11 + 0.5 / 12, 0.5 / 12 + 0.5 / 11, 0.5 / 13 + 0.5 / 10]
    assert np.allclose(fused, np.array(expected) / max(expected))
    with pytest.raises(rec.RecommenderError):
        rec_model.fuse([(softmax, 0.5), (als, 0.5)], "average")


def test_a_fused_fit_is_the_two_parts_fitted_alone() -> None:
    data = _taste_store(shoppers=120)
    fused = rec.fit(data, FUSED)
    als = rec.fit(data, rec_model.part_params(FUSED, "als"))
    softmax = rec.fit(data, rec_model.part_params(FUSED, "softmax"))

    assert fused.fused and fused.params == FUSED and fused.counts["softmax_contexts"] > 50
    assert np.array_equal(fused.item_factors, als.item_factors) and fused.item_factors.shape[1] == PARAMS.factors
    assert np.array_equal(fused.softmax.target, softmax.softmax.target)
    history = rec.ShopperHistory(weights={2: rec.PURCHASE_WEIGHT, 6: rec.PURCHASE_WEIGHT}, bought={2, 6})
    ranked = fused.rank(history, 10)
    assert ids(ranked) != ids(als.rank(history, 10)) and ids(ranked) != ids(softmax.rank(history, 10))
    assert set(ids(ranked)) <= set(ids(als.rank(history, 20))) | set(ids(softmax.rank(history, 20)))


def test_a_fused_fit_with_ease_is_the_three_parts_fitted_alone() -> None:
    data = _taste_store(shoppers=120)
    fused = rec.fit(data, FUSED_WITH_EASE)
    parts = {kind: rec.fit(data, rec_model.part_params(FUSED_WITH_EASE, kind)) for kind in ("als", "softmax", "ease")}

    assert fused.fused and fused.params == FUSED_WITH_EASE and fused.counts["ease_weights"] > 0
    assert parts["als"].params.bm25_b == parts["ease"].params.bm25_b == 0.5  # every part reads BM25 rows
    assert np.array_equal(fused.item_factors, parts["als"].item_factors)
    assert np.array_equal(fused.softmax.target, parts["softmax"].softmax.target)
    assert (fused.ease != parts["ease"].ease).nnz == 0
    history = rec.ShopperHistory(weights={2: rec.PURCHASE_WEIGHT, 6: rec.PURCHASE_WEIGHT}, bought={2, 6})
    two_parts = rec_model.fuse_models(parts["als"], parts["softmax"], FUSED_WITH_EASE)
    assert two_parts.params.fusion_ease == 0.0 and two_parts.ease is None  # without its EASE part
    assert ids(fused.rank(history, 10)) != ids(two_parts.rank(history, 10))


def test_a_fused_fit_with_similar_shoppers_keeps_every_shoppers_input_row(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _taste_store(shoppers=120)
    params = replace(FUSED_WITH_EASE, fusion_neighbours=0.2)
    fused = rec.fit(data, params)
    ease = rec.fit(data, rec_model.part_params(params, "ease"))

    # EASE's input rows (BM25, log weights), one per shopper: what the EASE part was fitted on.
    assert fused.params == params and fused.neighbours.shape == (120, fused.n_items)
    _shoppers, _products, weights = rec.weighted_interactions(data, fused.product_ids, params)
    expected = rec_model.model_input(weights, ease.params, ease.idf, ease.mean_length)
    assert np.allclose(fused.neighbours.toarray(), expected.toarray())
    history = rec.ShopperHistory(weights={2: rec.PURCHASE_WEIGHT, 6: rec.PURCHASE_WEIGHT}, bought={2, 6})
    without = rec.fit(data, FUSED_WITH_EASE)
    assert without.neighbours is None and ids(fused.rank(history, 10)) != ids(without.rank(history, 10))

    # A big store: only the shoppers with the most products are compared with.
    monkeypatch.setattr(rec_model, "NEIGHBOURS_MAX", 10)
    kept = rec_model.neighbour_rows(data, fused)
    most = np.sort(np.diff(weights.indptr))[::-1][:10]
    assert kept.shape[0] == 10 and sorted(np.diff(kept.indptr).tolist(), reverse=True) == most.tolist()


def test_above_ease_max_items_a_fused_fit_leaves_ease_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rec_model, "EASE_MAX_ITEMS", 10)  # the taste store has 80 products
    model = rec.fit(_taste_store(shoppers=60), FUSED_WITH_EASE)
    assert model.fused and model.ease is None and model.params == replace(FUSED_WITH_EASE, fusion_ease=0.0)


def test_without_dated_first_purchases_a_fused_fit_trains_als() -> None:
    from tests.test_recommender_ease import _buys

    one_order_each = _buys([(s, 1 + (s + k) % 6, s, float(s)) for s in range(1, 30) for k in range(2)], 6)
    model = rec.fit(one_order_each, FUSED)
    assert model.params.model == "als" and model.softmax is None and not model.fused


def test_fused_versions_are_saved_published_hot_reloaded_and_served(engine: Engine, tmp_path: Path) -> None:
    p, shopper = two_taste_store(engine, views=False)
    trainer_dir, worker_dir = tmp_path / "trainer", tmp_path / "worker"
    worker = rec.RecommenderStore(worker_dir, check_every=0, engine=engine)
    first = rec.train(engine, trainer_dir, params=PARAMS)
    assert worker.get().version == first.version and not worker.get().fused  # an ALS version (format 1)

    info = rec.train(engine, trainer_dir, params=FUSED)
    manifest = json.loads((info.path / "manifest.json").read_text())
    assert manifest["format"] == rec_artifacts.FUSED_ARTIFACT_FORMAT == 4  # code before it refuses
    assert manifest["params"]["model"] == "fused" and (info.path / "softmax.npz").exists()

    # The worker, without the trainer's disk, picks the new version up from the database.
    served = worker.get()
    fitted = rec.fit(rec.load_interactions(engine), FUSED)
    assert served.version == info.version and served.fused and served.params == FUSED
    assert np.array_equal(served.item_factors, fitted.item_factors)
    assert np.array_equal(served.softmax.context, fitted.softmax.context)
    assert_serves_like(engine, served, fitted, p, shopper)

    # The older formats still load beside it.
    assert rec_artifacts.load_version(first.path).params == PARAMS


def test_fused_versions_with_ease_are_saved_published_and_served(engine: Engine, tmp_path: Path) -> None:
    p, shopper = two_taste_store(engine, views=False)
    worker = rec.RecommenderStore(tmp_path / "worker", check_every=0, engine=engine)
    info = rec.train(engine, tmp_path / "trainer", params=FUSED_WITH_EASE)
    manifest = json.loads((info.path / "manifest.json").read_text())
    # Format 5: format-4 code would read the EASE weights as an EASE model and drop ALS.
    assert manifest["format"] == rec_artifacts.FUSED_EASE_ARTIFACT_FORMAT == 5
    assert (info.path / "ease.npz").exists() and (info.path / "softmax.npz").exists()

    served = worker.get()
    fitted = rec.fit(rec.load_interactions(engine), FUSED_WITH_EASE)
    assert served.version == info.version and served.fused and served.params == FUSED_WITH_EASE
    assert (served.ease != fitted.ease).nnz == 0 and np.array_equal(served.item_factors, fitted.item_factors)
    assert_serves_like(engine, served, fitted, p, shopper)

    (info.path / "ease.npz").unlink()
    with pytest.raises(rec.RecommenderError, match=r"ease\.npz"):
        rec_artifacts.load_version(info.path)


def test_fused_versions_with_similar_shoppers_are_saved_published_and_served(engine: Engine, tmp_path: Path) -> None:
    p, shopper = two_taste_store(engine, views=False)
    params = replace(FUSED, fusion_neighbours=0.3)
    worker = rec.RecommenderStore(tmp_path / "worker", check_every=0, engine=engine)
    info = rec.train(engine, tmp_path / "trainer", params=params)
    manifest = json.loads((info.path / "manifest.json").read_text())
    # Format 4 still: code from before reads it as the two-part model, a sound ranking.
    assert manifest["format"] == rec_artifacts.FUSED_ARTIFACT_FORMAT and (info.path / "neighbours.npz").exists()

    served = worker.get()
    fitted = rec.fit(rec.load_interactions(engine), params)
    assert served.version == info.version and served.params == params and served.neighbours.shape[0] == 31
    assert (served.neighbours != fitted.neighbours).nnz == 0
    assert_serves_like(engine, served, fitted, p, shopper)

    (info.path / "neighbours.npz").unlink()
    with pytest.raises(rec.RecommenderError, match=r"neighbours\.npz"):
        rec_artifacts.load_version(info.path)
    # Without a share the rows are not kept.
    plain = rec.train(engine, tmp_path / "trainer", params=FUSED)
    assert not (plain.path / "neighbours.npz").exists() and rec_artifacts.load_version(plain.path).neighbours is None


def test_a_version_claiming_to_be_fused_without_its_softmax_weights_is_refused(engine: Engine, tmp_path: Path):
    two_taste_store(engine, views=False)
    info = rec.train(engine, tmp_path, params=FUSED)
    (info.path / "softmax.npz").unlink()
    with pytest.raises(rec.RecommenderError, match=r"softmax\.npz"):
        rec_artifacts.load_version(info.path)


def _count_fits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The model of each fit the tuner calls, in order ("fused" when it fits a fused model whole)."""
    fitted: list[str] = []
    real_fit = rec_tuning.fit

    def counting_fit(data, params=None, *args, **kwargs):
        fitted.append(params.model)
        return real_fit(data, params, *args, **kwargs)

    monkeypatch.setattr(rec_tuning, "fit", counting_fit)
    return fitted


def test_the_tuner_builds_the_fused_candidate_from_the_two_fits_and_records_it(monkeypatch: pytest.MonkeyPatch):
    fitted = _count_fits(monkeypatch)
    tuning = rec.tune(_taste_store(), PARAMS, budget=120)

    changes = [c["changes"] for c in tuning.candidates]
    assert changes[:4] == [{}, {"model": "softmax"}, {"model": "fused"}, {"model": "fused", **WITH_EASE}]
    # Built from the parts' fits, never refitted as a whole: the two-part one from the first two
    # fits, the three-part one from its own three (BM25 rows), the EASE part included.
    assert fitted[:5] == ["als", "softmax", "als", "softmax", "ease"] and "fused" not in fitted
    # The EASE candidate on BM25 rows is that EASE part: scored, not fitted again.
    assert {"model": "ease", "bm25_b": 0.5} in changes and fitted.count("ease") == 1
    fused = tuning.candidates[2]
    assert 0 < fused["ndcg@10"] <= 1 and fused["seconds"] < tuning.candidates[1]["seconds"]
    assert 0 < tuning.candidates[3]["ndcg@10"] <= 1


def test_the_tuner_tries_similar_shoppers_on_a_fused_model_without_a_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    fitted = _count_fits(monkeypatch)
    monkeypatch.setattr(rec_tuning, "FIT_CANDIDATES", ())
    monkeypatch.setattr(rec_tuning, "REGULARIZATION_STEPS", ())
    tuning = rec.tune(_taste_store(), FUSED, budget=120)

    changes = [c["changes"] for c in tuning.candidates]
    # Tried first among the ranking changes, on the fused model fitted at the start (one fit).
    assert changes[:2] == [{}, {"fusion_neighbours": 0.25}] and fitted == ["fused"]
    assert 0 < tuning.candidates[1]["ndcg@10"] <= 1
    # Chosen or not, what it scored is what a fit with those parameters ranks (the tuner's copy
    # carried the same rows a fit keeps): rescore it on the split.
    split = rec_tuning.time_split(_taste_store())
    model = rec.fit(split.train, replace(FUSED, fusion_neighbours=0.25))
    quality = rec_tuning.score(rec_tuning.model_ranking(model), split.truth,
                               rec_tuning.histories(split.train, model.params, set(split.truth)))
    assert round(quality.ndcg, 5) == tuning.candidates[1]["ndcg@10"]


def test_the_model_card_names_the_fused_model_and_its_fusion() -> None:
    from chatdash.services.recommender import card

    fused = dict(card.shown_params(asdict(replace(FUSED, fusion_weight=0.6, fusion_ease=0.4))))
    assert fused["model"] == "fused" and fused["fusion_weight"] == 0.6 and fused["fusion"] == "rank"
    assert fused["fusion_ease"] == 0.4 and fused["fusion_neighbours"] == 0.0
    from chatdash.state.recommendations import PARAM_LABELS

    assert set(card.SHOWN_PARAMS) <= set(PARAM_LABELS)  # the card names each in words, not by its field
    assert fused["softmax_l2"] == FUSED.softmax_l2 and fused["factors"] == FUSED.factors
    als = dict(card.shown_params(asdict(PARAMS)))
    assert als["model"] == "als" and not {"fusion_weight", "fusion", "softmax_l2", "fusion_ease",
                                          "fusion_neighbours"} & set(als)
    from chatdash.cli import _model_name

    assert _model_name(asdict(replace(FUSED, fusion_ease=0.4, fusion_neighbours=0.2))) == (
        "ALS + softmax + EASE^R + similar shoppers (fused)")
    assert _model_name(asdict(FUSED)) == "ALS + softmax (fused)" and _model_name(asdict(PARAMS)) == "ALS"


def test_the_budget_counts_a_fused_candidate_as_the_fits_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake clock: every fit takes 10 s and every scoring 1 s. The three-part candidate needs three
    fits (30 s): with 26 s left it is left out, and the one-fit candidates after it still run."""
    from types import SimpleNamespace

    now = [0.0]
    real_fit, real_score = rec_tuning.fit, rec_tuning.score

    def slow_fit(*args, **kwargs):
        now[0] += 10.0
        return real_fit(*args, **kwargs)

    def slow_score(*args, **kwargs):
        now[0] += 1.0
        return real_score(*args, **kwargs)

    monkeypatch.setattr(rec_tuning, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    monkeypatch.setattr(rec_tuning, "fit", slow_fit)
    monkeypatch.setattr(rec_tuning, "score", slow_score)
    tuning = rec.tune(_taste_store(), PARAMS, budget=50)

    changes = [c["changes"] for c in tuning.candidates]
    # start (fit + scoring + popularity's scoring: 12 s), softmax (11 s), fused from those two (1 s): 24 s
    assert changes[:3] == [{}, {"model": "softmax"}, {"model": "fused"}]
    assert {"model": "fused", **WITH_EASE} not in changes  # 24 + 3 x 10 + 1 > 50
    assert {"purchase_once": True, "bm25_b": 1.0} in changes and {"purchase_once": True} in changes  # 35, 46
    assert tuning.seconds <= 50
