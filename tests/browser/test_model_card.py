"""Settings → Recommendations in real Chromium: the owner finds it from the
page's index and sees the card of the model the app really trained (figures
from its version in the database),
presses Retrain, watches the progress arrive, and the card turns to the new
version when it is live; an agent's Settings have no such section."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, col, select

from chatdash.db import make_engine
from chatdash.models import ModelArtifact, Role
from chatdash.services import auth
from tests.browser.test_live_chat import admin_page
from tests.conftest import login

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# Every text the progress line takes, as the page renders it (a training of the
# small demo store takes a few seconds: polling could miss a step, this cannot).
WATCH_PROGRESS = """() => {
  window.__progress = [];
  new MutationObserver(() => {
    const p = document.querySelector('#train-percent'), s = document.querySelector('#train-step');
    if (p && s) window.__progress.push([p.textContent, s.textContent]);
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def _newest_manifest(engine) -> dict:
    with Session(engine) as s:
        row = s.exec(select(ModelArtifact).order_by(col(ModelArtifact.created_at).desc())).first()
        return json.loads(row.manifest)


def _expect_card_of(page, manifest: dict) -> None:
    counts, holdout = manifest["counts"], manifest["tuning"]["holdout"]
    expect(page.locator("#model-version")).to_have_text(manifest["version"])
    expect(page.locator("#model-shoppers")).to_have_text(f"{counts['shoppers']:,}")
    expect(page.locator("#model-products")).to_have_text(f"{counts['products']:,}")
    expect(page.locator("#model-interactions")).to_have_text(f"{counts['interactions']:,}")
    expect(page.locator("#model-ndcg")).to_have_text(f"{holdout['model']['ndcg@10']:.4f}")
    expect(page.locator("#popularity-ndcg")).to_have_text(f"{holdout['popularity']['ndcg@10']:.4f}")
    expect(page.locator("#model-precision")).to_have_text(f"{holdout['model']['precision@10']:.4f}")
    expect(page.locator("#popularity-precision")).to_have_text(f"{holdout['popularity']['precision@10']:.4f}")
    ratio = holdout["model"]["ndcg@10"] / holdout["popularity"]["ndcg@10"]
    expect(page.locator("#model-lift")).to_have_text(f"{ratio:.2f}× popularity")
    factors = manifest["params"]["factors"]
    expect(page.locator(".model-param", has_text="Factors")).to_contain_text(str(factors))


def test_the_owner_retrains_from_the_model_card_and_watches_it_go_live(live_app, browser):
    eng = make_engine(live_app.db_url)
    trained = _newest_manifest(eng)  # what `setup` trained, tuned, before the app started
    owner_ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    agent_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        owner = admin_page(owner_ctx, live_app)
        owner.locator("#menu-settings").click()
        card = owner.locator("#recommendations-section")
        expect(card).to_be_visible()
        # The long page's index takes the owner to the card (below the fold at first).
        expect(card).not_to_be_in_viewport()
        owner.locator("#settings-index").get_by_role("link", name="Recommendations").click()
        expect(card).to_be_in_viewport()
        _expect_card_of(owner, trained)
        # The chart: two metrics, a bar for the model and one for popularity in each.
        expect(card.locator("#model-chart .recharts-bar-rectangle")).to_have_count(4)
        legend = card.locator("#model-chart .recharts-legend-item")
        expect(legend).to_have_count(2)
        for method in ("This model", "Popularity"):
            expect(legend.filter(has_text=method)).to_have_count(1)
        SHOTS.mkdir(exist_ok=True)
        card.screenshot(path=str(SHOTS / "model-card.png"))

        owner.evaluate(WATCH_PROGRESS)
        owner.locator("#retrain").click()
        progress_line = owner.locator("#train-progress")
        expect(progress_line).to_be_visible()  # the tuning alone takes seconds
        expect(owner.locator("#retrain")).to_be_disabled()  # one training at a time
        card.screenshot(path=str(SHOTS / "model-card-training.png"))
        done = owner.locator("#train-done")
        expect(done).to_contain_text("is live", timeout=120_000)
        retrained = _newest_manifest(eng)
        assert retrained["version"] != trained["version"]
        expect(done).to_contain_text(f"version {retrained['version']} is live")
        _expect_card_of(owner, retrained)  # the card turned to the new version by itself
        # The new version's time (to the minute, so it may equal the old one's: the
        # version above is what proves the card turned).
        trained_at = datetime.fromisoformat(retrained["created_at"]).astimezone(UTC)
        expect(owner.locator("#model-trained-at")).to_have_text(trained_at.strftime("%-d %b %Y, %H:%M UTC"))
        expect(progress_line).to_have_count(0)
        expect(owner.locator("#retrain")).to_be_enabled()
        progress = owner.evaluate("window.__progress")
        percents = [int(p.rstrip("%")) for p, _step in progress]
        assert any(0 < p < 100 for p in percents), progress  # the progress showed on the way
        assert percents == sorted(percents), progress  # and only went forward
        assert any(step.startswith("Trying parameters") for _p, step in progress), progress
        card.screenshot(path=str(SHOTS / "model-card-retrained.png"))

        # ----- an agent's Settings have no model card (and the handlers refuse them:
        # tests/test_handler_security.py)
        email = f"agent-{uuid.uuid4().hex[:6]}@store.test"
        with Session(eng) as s:
            auth.create_admin(s, email, "agent-password-1", "Agent Smith", role=Role.AGENT)
            s.commit()
        agent = agent_ctx.new_page()
        login(agent, live_app, email, "agent-password-1")
        expect(agent).to_have_url(re.compile(r"/admin/conversations/?$"))
        agent.goto(f"{live_app.frontend}/admin/settings")
        expect(agent.locator("#saved-replies-section")).to_be_visible()  # the page is there
        expect(agent.locator("#recommendations-section")).to_have_count(0)
        index = agent.locator("#settings-index")
        expect(index.get_by_role("link", name="Saved replies")).to_be_visible()
        expect(index.get_by_role("link", name="Recommendations")).to_have_count(0)
        expect(agent.locator("#retrain")).to_have_count(0)
    finally:
        owner_ctx.close()
        agent_ctx.close()
        eng.dispose()
