"""chatdash command line: set-up, demo data, imports, admin accounts.

Run `python -m chatdash.cli --help`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from chatdash.db import get_engine, migrate, session_scope
from chatdash.settings import get_settings

cli = typer.Typer(help="chatdash: live chat for online stores.", no_args_is_help=True)
console = Console()


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@cli.command()
def migrate_db() -> None:
    """Apply database migrations (Alembic) up to the latest revision."""
    migrate()
    console.print("[green]Database schema is up to date.")


@cli.command("demo-data")
def demo_data(
    seed: int = typer.Option(7, help="Random seed; the same seed gives the same store."),
    profile: str = typer.Option("gear", help="gear: the demo store with visits and carts; grocery: a year of "
                                "basket orders (4,000 products, 2,000 customers, about 0.9M order lines)."),
) -> None:
    """Fill an empty database with the deterministic demo store, its activity up to about an hour ago."""
    from chatdash.services import demo_data as demo

    if profile not in ("gear", "grocery"):
        console.print(f"[red]Unknown profile {profile!r}:[/] choose gear or grocery.")
        raise typer.Exit(2)
    migrate()
    engine = get_engine()
    if not demo.database_is_empty(engine):
        console.print("[yellow]The database already has store data; nothing generated.")
        raise typer.Exit(1)
    if profile == "grocery":
        _generate_grocery(engine, seed)
    else:
        _generate_demo(engine, seed)


def _generate_grocery(engine, seed: int) -> None:
    from chatdash.services import demo_grocery

    with _progress() as progress:
        summary = demo_grocery.generate_grocery_data(engine, store_url=get_settings().demo_store_url,
                                                     seed=seed,
                                                     progress=_step_reporter(progress),
                                                     anchor=_anchor_now() - demo_grocery.OVERRUN)
    console.print(
        f"[green]Grocery store ready:[/] {summary.products:,} products in {summary.categories} aisles, "
        f"{summary.shoppers:,} customers, {summary.orders:,} orders, {summary.order_lines:,} order lines."
    )


def _step_reporter(progress: Progress):
    """A progress(step, done, total) callback drawing one bar per step."""
    tasks: dict[str, int] = {}

    def report(step: str, done: int, total: int) -> None:
        if step not in tasks:
            tasks[step] = progress.add_task(step, total=total)
        progress.update(tasks[step], completed=done, total=total)

    return report


def _anchor_now():
    """A new store's demo is current: it ends about an hour before now (tests and
    benchmarks call the generators without an anchor and get the fixed one)."""
    from chatdash.models import utcnow

    return _demo_module().anchor_for(utcnow())


def _demo_module():
    from chatdash.services import demo_data

    return demo_data


SMALL_DEMO = {"products": 240, "shoppers": 300, "orders": 700}
#: How `train` names each personal model.
MODEL_NAMES = {"als": "ALS", "ease": "EASE^R", "softmax": "softmax (first purchases)",
               "fused": "ALS + softmax (fused)"}


def _model_name(params: dict) -> str:
    if params.get("model") != "fused":
        return MODEL_NAMES.get(params.get("model"), "ALS")
    parts = ["ALS", "softmax"] + ["EASE^R"] * bool(params.get("fusion_ease")) + [
        "similar shoppers"] * bool(params.get("fusion_neighbours"))
    return f"{' + '.join(parts)} (fused)"


def _generate_demo(engine, seed: int = 7, sizes: dict[str, int] | None = None) -> None:
    demo = _demo_module()

    with _progress() as progress:
        report = _step_reporter(progress)
        summary = demo.generate_demo_data(
            engine, store_url=get_settings().demo_store_url, seed=seed, progress=report, anchor=_anchor_now(),
            **(sizes or {}),
        )
    console.print(
        f"[green]Demo store ready:[/] {summary.products:,} products in {summary.categories} categories, "
        f"{summary.shoppers:,} shoppers, {summary.orders:,} orders, {summary.events:,} events, "
        f"{summary.conversations:,} conversations ({summary.cards_sent:,} products sent in chats, "
        f"{summary.cards_ordered:,} bought)."
    )
    _load_demo_store(engine, only_if_empty=False)


def _load_demo_store(engine, *, only_if_empty: bool) -> None:
    """The demo store (demo_store/) keeps its own catalog: hand it the demo
    products as the catalog CSV that import-catalog reads."""
    from demo_store import catalog as store_catalog
    from demo_store.settings import get_settings as store_settings

    if only_if_empty and not store_catalog.is_empty():
        return
    path = store_settings().catalog_csv
    count = _demo_module().write_catalog_csv(engine, path, get_settings().demo_store_url)
    if count:
        store_catalog.load_catalog_csv(path)
        console.print(f"[green]Demo store catalog:[/] {count:,} products, loaded from {path}.")


def _import(kind: str, path: Path) -> None:
    from chatdash.services import catalog

    migrate()
    func = catalog.import_catalog if kind == "catalog" else catalog.import_orders
    with _progress() as progress:
        task = progress.add_task(f"{kind}", total=None)
        try:
            result = func(get_engine(), path,
                          progress=lambda done, total: progress.update(task, completed=done, total=total))
        except catalog.CsvImportError as exc:
            console.print(f"[red]Import refused, nothing was written:[/] {exc}")
            raise typer.Exit(2) from exc
    console.print(
        f"[green]Imported {path.name}:[/] {result.rows:,} rows — {result.created:,} created, "
        f"{result.updated:,} updated, {result.unchanged:,} unchanged."
    )


@cli.command("import-catalog")
def import_catalog(path: Path = typer.Argument(..., help="CSV file, see docs/importing.md")) -> None:
    """Import or update the product catalog from a CSV file (all or nothing)."""
    _import("catalog", path)


@cli.command("import-orders")
def import_orders(path: Path = typer.Argument(..., help="CSV file, see docs/importing.md")) -> None:
    """Import order history from a CSV file (all or nothing; re-imports add nothing twice)."""
    _import("orders", path)


@cli.command("add-admin")
def add_admin(
    email: str,
    name: str = typer.Option("", help="Display name"),
    role: str = typer.Option("owner", help="owner (settings and team) or agent (conversations)"),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
) -> None:
    """Add a staff account with a password (an owner, or an agent with --role agent)."""
    from chatdash.services import auth

    migrate()
    try:
        with session_scope() as session:
            admin = auth.create_admin(session, email, password, name, role=role)
    except auth.AuthError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(2) from exc
    console.print(f"[green]{admin.role.capitalize()} {admin.email} added.")


@cli.command("invite")
def invite(email: str, name: str = typer.Option("", help="Display name")) -> None:
    """Invite an agent: prints a one-time link where they set their password."""
    from chatdash import routes
    from chatdash.services import auth, team

    migrate()
    try:
        member, token = team.invite(email, name)
    except auth.AuthError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(2) from exc
    link = f"{get_settings().public_url.rstrip('/')}{routes.INVITE}?t={token}"
    console.print(f"[green]Agent {member.email} invited.[/] Send them this one-time link (valid "
                  f"{team.INVITE_DAYS} days):\n{link}")


@cli.command("team")
def team_list() -> None:
    """List the team: owners and agents."""
    from chatdash.services import team

    migrate()
    for m in team.members():
        console.print(f"{m.role:<6} {m.email:<40} {m.name}{'  (invited)' if m.pending else ''}")


@cli.command("set-password")
def set_password(
    email: str,
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
) -> None:
    """Set a new password for an admin (ends their sessions)."""
    from chatdash.services import auth

    try:
        with session_scope() as session:
            auth.set_password(session, email, password)
    except auth.AuthError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(2) from exc
    console.print(f"[green]Password for {email} changed.")


@cli.command()
def setup(
    demo: bool = typer.Option(True, help="Load the demo store when the database is empty."),
    small_demo: bool = typer.Option(False, help="A small demo store (for tests)."),
) -> None:
    """Everything the app needs before it starts: schema, first admin, demo data."""
    from chatdash.services import auth

    settings = get_settings()
    migrate()
    engine = get_engine()
    created = auth.ensure_first_admin(engine, settings.admin_email, settings.admin_password)
    if demo and _demo_module().database_is_empty(engine):
        console.print("Empty database: generating the demo store…")
        _generate_demo(engine, sizes=SMALL_DEMO if small_demo else None)
    if demo:
        _load_demo_store(engine, only_if_empty=True)
    from chatdash.services import recommender

    if recommender.load_latest() is None and not _demo_module().database_is_empty(engine):
        console.print("No recommender trained yet: training it now…")
        with contextlib.suppress(typer.Exit):
            train(None, tune=True, budget=60.0)
    console.rule("chatdash")
    console.print(f"Admin dashboard: [bold]{settings.public_url}/login")
    console.print(f"Demo store:      [bold]{settings.demo_store_url}")
    if created:
        email, password = created
        if password:
            console.print(
                f"First admin created. Log in as [bold]{email}[/] with password [bold]{password}[/]\n"
                "(shown only this once; change it with `python -m chatdash.cli set-password`)."
            )
        else:
            console.print(f"First admin created: [bold]{email}[/] with the password from CHATDASH_ADMIN_PASSWORD.")
    else:
        console.print("Log in with your admin account (add one with `python -m chatdash.cli add-admin`).")


@cli.command()
def train(
    out: Path | None = typer.Option(None, help="Artifact directory (default: data/models)."),
    tune: bool = typer.Option(True, help="Choose the parameters on the store's own latest orders first."),
    budget: float = typer.Option(120.0, min=0, help="Seconds the tuning may take (one candidate at least)."),
) -> None:
    """Train the recommender and the related-products tables; the running app picks them up."""
    from chatdash.services import recommender

    migrate()
    out_dir = out or recommender.default_model_dir()
    try:
        with _progress() as progress:
            report = _step_reporter(progress)
            info = recommender.train(get_engine(), out_dir, progress=report, tune=tune, budget=budget)
    except recommender.RecommenderError as exc:
        console.print(f"[yellow]Nothing trained:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"[green]Recommender trained[/] in {info.seconds:.1f} s: {info.interactions:,} interactions, "
        f"{info.shoppers:,} shoppers, {info.products:,} products; model "
        f"{_model_name(info.params)}.\nArtifacts: {info.path} (now the latest)."
    )
    if info.tuning is not None:
        holdout = info.tuning["holdout"]
        model, popular = holdout["model"]["ndcg@10"], holdout["popularity"]["ndcg@10"]
        ratio = f" ({model / popular:.2f}x)" if popular else ""
        console.print(
            f"Tuned on the orders after {holdout['cutoff'][:16]} ({holdout['shoppers']:,} shoppers' first "
            f"purchases, {len(info.tuning['candidates'])} candidates, {info.tuning['seconds']:.0f} s): "
            f"ndcg@10 {model:.4f} vs popularity {popular:.4f}{ratio}."
        )
    elif tune:
        console.print("[yellow]Not tuned:[/] too little order history to hold some out; default parameters.")


if __name__ == "__main__":
    cli()
