"""Workers that start together on a new PostgreSQL database each migrate it on
start: they take turns, and every one of them comes up."""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import event, inspect, text

from chatdash.db import make_engine, migrate
from tests.conftest import PG_URL


def test_four_workers_migrating_a_new_database_at_once_all_succeed():
    schema = f"t_mig_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engines = []
    for _ in range(4):  # one engine per worker process
        eng = make_engine(PG_URL)

        @event.listens_for(eng, "connect")
        def _search_path(dbapi_conn, _rec) -> None:
            cur = dbapi_conn.cursor()
            cur.execute(f'SET search_path TO "{schema}"')
            cur.close()
            dbapi_conn.commit()

        engines.append(eng)
    start = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def worker(eng) -> None:
        start.wait(30)
        try:
            migrate(eng)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(e,)) for e in engines]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        assert "model_artifact" in inspect(engines[0]).get_table_names()
    finally:
        for eng in engines:
            eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
