"""Load benchmark of the config API: concurrent clients on loopback against uvicorn.

    python -m bench.api_load [--database-url URL] [--requests 2000] [--concurrency 32]

Starts uvicorn (one worker) on a free 127.0.0.1 port against a fresh database (PostgreSQL
when --database-url or TEST_DATABASE_URL is set, else SQLite), then prints requests/s and
p50/p99 latency for GET by id, list and POST. Bounded in count; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from api.migrate import upgrade
from lib.api_server import api_process
from lib.contract import seed_campaign
from lib.data import generate_users
from lib.settings import PROJECT_ROOT, get_settings
from lib.training import save_model, train_model


async def _measure(
    url: str,
    name: str,
    requests: int,
    concurrency: int,
    make_request: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]],
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    queue = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            for i in queue:
                started = time.perf_counter()
                response = await make_request(client, i)
                latencies.append(time.perf_counter() - started)
                errors += response.status_code >= 400

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "operation": name,
        "requests": requests,
        "errors": errors,
        "req_per_s": requests / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api_load", description=__doc__)
    parser.add_argument("--database-url", default=get_settings().test_database_url)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    models = work / "models"
    save_model(train_model(generate_users(2000, 7, labelled=True), iterations=20), models)
    drop_database: Callable[[], None] | None = None
    if args.database_url:
        name = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(args.database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url_db = make_url(args.database_url).set(database=name).render_as_string(False)

        def drop_database() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    else:
        url_db = f"sqlite:///{work / 'bench.db'}"
    upgrade(url_db)
    env = {"DATABASE_URL": url_db, "MODEL_DIR": str(models), "DATA_DIR": str(work)}
    try:
        with api_process(work / "api.log", env=env) as url:
            body = {k: v for k, v in seed_campaign().items() if k != "name"}
            for i in range(100):
                httpx.post(f"{url}/campaigns/", json={**body, "name": f"seed {i}"})
            results = asyncio.run(_run_all(url, body, args.requests, args.concurrency))
    finally:
        if drop_database is not None:
            drop_database()

    backend = make_url(url_db).get_backend_name()
    print(
        f"\nConfig API load: uvicorn (1 worker) + {backend}, {args.concurrency} concurrent "
        f"clients, {os.cpu_count()} cores"
    )
    print(f"{'operation':<22}{'requests':>9}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for r in results:
        print(
            f"{r['operation']:<22}{r['requests']:>9}{r['errors']:>8}{r['req_per_s']:>9.0f}"
            f"{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
        )
    out = PROJECT_ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "api_load.json").write_text(
        json.dumps({"backend": backend, "results": results}, indent=2)
    )
    return 0


async def _run_all(url: str, body: dict, n: int, c: int) -> list[dict]:
    return [
        await _measure(
            url, "GET /campaigns/{id}", n, c, lambda cl, i: cl.get(f"/campaigns/{i % 100 + 1}")
        ),
        await _measure(
            url, "GET /campaigns/", n, c, lambda cl, i: cl.get("/campaigns/", params={"limit": 50})
        ),
        await _measure(
            url,
            "POST /campaigns/",
            n,
            c,
            lambda cl, i: cl.post("/campaigns/", json={**body, "name": f"load {i}"}),
        ),
    ]


if __name__ == "__main__":
    sys.exit(main())
