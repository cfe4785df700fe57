"""Trained versions: saved on disk, published to the database, loaded, the newest
kept, and reloaded in memory when a newer one appears.

The database holds every worker's copy of the truth: `publish` packs a saved
version into a `ModelArtifact` row, and a `RecommenderStore` given an engine
unpacks a newer row into its own model directory before loading it. Workers on
several machines need no shared disk."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tarfile
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from chatdash.models import ModelArtifact
from chatdash.services.recommender.interactions import CART_WEIGHT, PURCHASE_WEIGHT, VIEW_WEIGHT
from chatdash.services.recommender.model import Params, Recommender, RecommenderError
from chatdash.services.recommender.relations import RELATIONS, RelationTable
from chatdash.services.recommender.softmax import SoftmaxWeights
from chatdash.settings import DATA_DIR, get_settings

log = logging.getLogger(__name__)

ARTIFACT_FORMAT = 1
#: EASE versions: a code base from before EASE would read one as an ALS model without
#: factors, so they carry a format it refuses (and it keeps serving its current version).
EASE_ARTIFACT_FORMAT = 2
#: Softmax versions, likewise: code from before the softmax model refuses them.
SOFTMAX_ARTIFACT_FORMAT = 3
#: Fused versions (ALS factors and softmax weights): code from before them would serve the
#: ALS part alone as if it were the whole model, so they carry a format it refuses.
FUSED_ARTIFACT_FORMAT = 4
#: Fused versions with an EASE part (`fusion_ease`): code from before it would serve them
#: without ALS (it reads a version with EASE weights as an EASE model), so it must refuse them.
FUSED_EASE_ARTIFACT_FORMAT = 5
#: A fused version with similar shoppers (`fusion_neighbours`, neighbours.npz) keeps its format:
#: code from before them reads it as the same model without that part, a sound ranking still.
FORMATS = (ARTIFACT_FORMAT, EASE_ARTIFACT_FORMAT, SOFTMAX_ARTIFACT_FORMAT, FUSED_ARTIFACT_FORMAT,
           FUSED_EASE_ARTIFACT_FORMAT)
LATEST = "latest.json"
KEEP_VERSIONS = 3


def default_model_dir() -> Path:
    """Where trained artifacts live: data/models unless settings say otherwise."""
    configured = getattr(get_settings(), "model_dir", None)
    return Path(configured) if configured else DATA_DIR / "models"


@dataclass(frozen=True)
class ArtifactInfo:
    version: str
    path: Path
    created_at: datetime
    interactions: int
    shoppers: int
    products: int
    seconds: float
    params: dict[str, Any]
    #: What tuning tried, chose and scored on the store's held-out orders (None: not tuned).
    tuning: dict[str, Any] | None = None


def save(
    recommender: Recommender, out_dir: Path, *, seconds: float = 0.0, tuning: dict[str, Any] | None = None
) -> ArtifactInfo:
    """Write the artifacts to a new version directory and point latest.json at it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    created = datetime.now(UTC)
    version = created.strftime("%Y%m%dT%H%M%S%fZ")
    while (out_dir / version).exists():  # two trainings within one microsecond
        version += "x"
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out_dir))
    try:
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide it from an app running as another user
        np.save(tmp / "item_factors.npy", recommender.item_factors)
        if recommender.user_factors is not None and recommender.shopper_ids is not None:
            np.save(tmp / "user_factors.npy", np.asarray(recommender.user_factors, np.float32))
            np.save(tmp / "shopper_ids.npy", recommender.shopper_ids)
        np.savez(tmp / "items.npz", product_ids=recommender.product_ids, category=recommender.item_category,
                 popularity=recommender.popularity, idf=recommender.idf, trend=recommender.trend)
        if recommender.ease is not None:  # EASE's item-item weights (ALS versions have none)
            b = recommender.ease
            np.savez(tmp / "ease.npz", indptr=b.indptr, indices=b.indices, data=b.data, shape=np.array(b.shape))
        if recommender.neighbours is not None and recommender.params.fusion_neighbours > 0:  # similar shoppers
            n = recommender.neighbours
            np.savez(tmp / "neighbours.npz", indptr=n.indptr, indices=n.indices, data=n.data, shape=np.array(n.shape))
        if recommender.softmax is not None:  # the softmax model's bias and embeddings
            w = recommender.softmax
            np.savez(tmp / "softmax.npz", bias=w.bias, context=w.context, target=w.target)
        for name, table in recommender.relations.items():
            np.savez(tmp / f"{name}.npz", indptr=table.indptr, indices=table.indices, scores=table.scores,
                     counts=table.counts)
        manifest = {
            "format": _format(recommender),
            "version": version,
            "created_at": created.isoformat(),
            "seconds": round(seconds, 3),
            "counts": recommender.counts,
            "params": asdict(recommender.params),
            "regularization": recommender.regularization,
            "mean_length": recommender.mean_length,
            "tuning": tuning,
            "categories": recommender.categories,
            "weights": {"view": VIEW_WEIGHT, "cart": CART_WEIGHT, "purchase": PURCHASE_WEIGHT},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        final = out_dir / version
        os.rename(tmp, final)  # the version appears complete or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _write_atomic(out_dir / LATEST, json.dumps({"version": version, "created_at": created.isoformat()}))
    recommender.version = version
    _prune(out_dir, keep=KEEP_VERSIONS, current=version)
    c = recommender.counts
    return ArtifactInfo(version, final, created, c.get("interactions", 0), c.get("shoppers", 0), c.get("products", 0),
                        seconds, asdict(recommender.params), tuning)


def _format(recommender: Recommender) -> int:
    if recommender.fused:
        return FUSED_ARTIFACT_FORMAT if recommender.ease is None else FUSED_EASE_ARTIFACT_FORMAT
    if recommender.softmax is not None:
        return SOFTMAX_ARTIFACT_FORMAT
    return ARTIFACT_FORMAT if recommender.ease is None else EASE_ARTIFACT_FORMAT


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _prune(out_dir: Path, keep: int, current: str) -> None:
    """Remove all but the newest `keep` versions (loaded models are in memory, not read from disk)."""
    versions = sorted(p for p in out_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    for old in versions[:-keep]:
        if old.name != current:
            shutil.rmtree(old, ignore_errors=True)
    for stale in out_dir.glob(".tmp-*"):
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > 3600:
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


def load_version(path: Path) -> Recommender:
    """Load one version directory into memory."""
    manifest = json.loads((path / "manifest.json").read_text())
    if manifest.get("format") not in FORMATS:
        raise RecommenderError(f"{path} has artifact format {manifest.get('format')}, expected one of {FORMATS}")
    known = Params.__dataclass_fields__
    params = Params(**{k: v for k, v in manifest["params"].items() if k in known})
    with np.load(path / "items.npz") as items:
        product_ids, category, popularity = items["product_ids"], items["category"], items["popularity"]
        idf, trend = items.get("idf"), items.get("trend")  # absent in versions saved before them
    ease = None
    if (params.model == "ease" or (params.model == "fused" and params.fusion_ease > 0)) and not (
            path / "ease.npz").exists():
        raise RecommenderError(f"{path} is an {params.model} version without its EASE weights (ease.npz)")
    if (path / "ease.npz").exists():
        with np.load(path / "ease.npz") as b:
            ease = sp.csr_matrix((b["data"], b["indices"], b["indptr"]), shape=tuple(b["shape"]))
    neighbours = None
    if params.model == "fused" and params.fusion_neighbours > 0:
        if not (path / "neighbours.npz").exists():
            raise RecommenderError(f"{path} is a fused version without its similar shoppers (neighbours.npz)")
        with np.load(path / "neighbours.npz") as n:
            neighbours = sp.csr_matrix((n["data"], n["indices"], n["indptr"]), shape=tuple(n["shape"]))
    softmax = None
    if params.model in ("softmax", "fused"):
        if not (path / "softmax.npz").exists():
            raise RecommenderError(f"{path} is a {params.model} version without its weights (softmax.npz)")
        with np.load(path / "softmax.npz") as w:
            softmax = SoftmaxWeights(w["bias"], w["context"], w["target"])
    relations = {}
    for name in RELATIONS:
        with np.load(path / f"{name}.npz") as t:
            relations[name] = RelationTable(t["indptr"], t["indices"], t["scores"], t["counts"])
    return Recommender(
        version=manifest["version"], params=params, regularization=manifest["regularization"],
        product_ids=product_ids, categories=manifest["categories"],
        item_category=category, popularity=popularity, item_factors=np.load(path / "item_factors.npy"),
        relations=relations, counts=manifest.get("counts"), idf=idf, trend=trend,
        mean_length=manifest.get("mean_length", 1.0), ease=ease, softmax=softmax, neighbours=neighbours,
    )


def read_manifest(out_dir: Path | None = None) -> dict[str, Any] | None:
    """The latest version's manifest (when trained, on how much, with what, tuning), or None."""
    out_dir = out_dir or default_model_dir()
    version = latest_version(out_dir)
    if version is None:
        return None
    try:
        return json.loads((out_dir / version / "manifest.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def latest_params(out_dir: Path) -> Params | None:
    """The parameters the latest version was tuned to (None when it was not tuned: versions
    from before tuning carry settings since changed, such as dropping baskets over 200)."""
    manifest = read_manifest(out_dir)
    if manifest is None or not manifest.get("tuning") or not isinstance(manifest.get("params"), dict):
        return None
    known = Params.__dataclass_fields__
    return Params(**{k: v for k, v in manifest["params"].items() if k in known and k != "num_threads"})


def latest_version(out_dir: Path) -> str | None:
    try:
        return json.loads((out_dir / LATEST).read_text())["version"]
    except (FileNotFoundError, KeyError, ValueError):
        return None


def load_latest(out_dir: Path | None = None) -> Recommender | None:
    """The latest trained version, or None when nothing was trained yet."""
    out_dir = out_dir or default_model_dir()
    version = latest_version(out_dir)
    if version is None:
        return None
    try:
        return load_version(out_dir / version)
    except FileNotFoundError:
        log.warning("latest.json points to %s, which is missing", out_dir / version)
        return None


# --------------------------------------------------------------------------- in the database


def publish(engine: Engine, info: ArtifactInfo) -> None:
    """Store a saved version in the database (the newest KEEP_VERSIONS are kept)."""
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz", compresslevel=1) as tar:
        for path in sorted(info.path.iterdir()):
            tar.add(path, arcname=path.name)
    manifest = (info.path / "manifest.json").read_text()
    with Session(engine) as session:
        session.merge(ModelArtifact(version=info.version, created_at=info.created_at, data=packed.getvalue(),
                                    manifest=manifest))
        session.flush()
        keep = select(ModelArtifact.version).order_by(col(ModelArtifact.created_at).desc()).limit(KEEP_VERSIONS)
        session.execute(delete(ModelArtifact).where(col(ModelArtifact.version).not_in(keep.scalar_subquery())))
        session.commit()


def published(engine: Engine) -> tuple[str, datetime] | None:
    """The newest version in the database and when it was trained."""
    with Session(engine) as session:
        row = session.execute(
            select(ModelArtifact.version, ModelArtifact.created_at)
            .order_by(col(ModelArtifact.created_at).desc()).limit(1)
        ).first()
    return (row[0], row[1]) if row else None


def published_manifests(engine: Engine) -> list[dict[str, Any]]:
    """The manifests of the versions in the database, newest first (what the model card shows)."""
    with Session(engine) as session:
        rows = session.execute(
            select(ModelArtifact.version, ModelArtifact.manifest).order_by(col(ModelArtifact.created_at).desc())
        ).all()
        found = []
        for version, text in rows:
            if text is None:  # published before manifests had a column of their own
                text = _packed_manifest(session.get(ModelArtifact, version).data)
            with contextlib.suppress(TypeError, ValueError):
                found.append(json.loads(text))
    return found


def _packed_manifest(data: bytes) -> str | None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        try:
            member = tar.extractfile("manifest.json")
        except KeyError:
            return None
        return member.read().decode() if member is not None else None


def fetch(engine: Engine, version: str, out_dir: Path) -> bool:
    """Unpack `version` from the database into `out_dir` and point latest.json at it."""
    with Session(engine) as session:
        row = session.get(ModelArtifact, version)
        if row is None:
            return False
        data, created = row.data, row.created_at
    out_dir.mkdir(parents=True, exist_ok=True)
    if not (out_dir / version).is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out_dir))
        try:
            tmp.chmod(0o755)
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                tar.extractall(tmp, filter="data")
            os.rename(tmp, out_dir / version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    _write_atomic(out_dir / LATEST, json.dumps({"version": version, "created_at": created.isoformat()}))
    _prune(out_dir, keep=KEEP_VERSIONS, current=version)
    return True


class RecommenderStore:
    """The loaded recommender, reloaded when latest.json changes (checked at most
    every `check_every` seconds). With `engine`, a newer version published in the
    database is fetched into `out_dir` first. `get()` never blocks on a reload
    another thread is doing."""

    def __init__(self, out_dir: Path | None = None, check_every: float = 30.0, engine: Engine | None = None) -> None:
        self.out_dir = out_dir or default_model_dir()
        self.check_every = check_every
        self.engine = engine
        self._current: Recommender | None = None
        self._mtime: int | None = None
        self._next_check = 0.0
        self._lock = threading.Lock()

    def get(self) -> Recommender | None:
        # The first caller waits for the first load; later ones keep serving the old model.
        if time.monotonic() >= self._next_check and self._lock.acquire(blocking=self._current is None):
            try:
                if time.monotonic() >= self._next_check:
                    self._sync()
                    self._refresh()
                    self._next_check = time.monotonic() + self.check_every
            finally:
                self._lock.release()
        return self._current

    def reload(self) -> Recommender | None:
        """Check for a newer version now (a training in this process just published one)."""
        with self._lock:
            self._sync()
            self._refresh()
            self._next_check = time.monotonic() + self.check_every
        return self._current

    def _sync(self) -> None:
        if self.engine is None:
            return
        try:
            newest = published(self.engine)
            if newest is not None and newest[0] != latest_version(self.out_dir):
                fetch(self.engine, newest[0], self.out_dir)
        except Exception:
            log.exception("could not fetch the recommender from the database; keeping the current one")

    def _refresh(self) -> None:
        try:
            mtime = (self.out_dir / LATEST).stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self._mtime:
            return
        version = latest_version(self.out_dir)
        if version is not None and (self._current is None or self._current.version != version):
            try:
                loaded = load_version(self.out_dir / version)
            except (OSError, ValueError, KeyError, RecommenderError):
                log.exception("could not load recommender version %s; keeping the current one", version)
                return
            self._current = loaded
            log.info("recommender version %s loaded", version)
        self._mtime = mtime
