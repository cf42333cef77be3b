"""Schemathesis over the OpenAPI spec, on the real database: generated requests, valid and
invalid, never get a 5xx (a bounded number of examples per operation and mode)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from dynplayer.playlist_file import MEDIA_TYPES
from dynplayer.serve.app import create_app
from dynplayer.settings import Settings

pytestmark = pytest.mark.db
EXAMPLES = 25


@pytest.fixture(scope="module")
def app(indexed_url: str, serve_run_dir: Path, text_searcher: object) -> Iterator[FastAPI]:
    app = create_app(
        Settings(database_url=indexed_url, run_dir=serve_run_dir, backend="pgvector",
                 admin_token="schema-token", auto_index=False),
        searcher_factory=lambda _run: text_searcher)  # type: ignore[arg-type,return-value]
    with TestClient(app):  # the lifespan: load the run, open the pool
        yield app


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(app: FastAPI, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/recommend/text", "/v1/recommend/continue",
                                              "/v1/tracks/{track_id}/similar",
                                              "/v1/tracks/search"}
    seen: dict[int, int] = {}
    for op in operations:
        if op.path.startswith("/v1/admin/"):
            continue  # a reindex per example is slow; the admin routes are tested directly

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            response = case.call()
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert response.status_code < 500, (case.method, case.formatted_path,
                                                case.body, response.text)
            content_type = response.headers.get("content-type", [""])
            # JSON everywhere, but a playlist export's file is in the format it asked for
            ok = (tuple(MEDIA_TYPES.values())
                  if case.path == "/v1/playlists/export" and response.status_code == 200
                  else ("application/json",))
            assert content_type[0].startswith(ok), (case.path, content_type)

        try:
            check()
        except Unsatisfiable:
            # /healthz and /v1/catalogs take no input, so there is nothing to make invalid
            # (/readyz takes `catalog` now; it stays allowed for an app without catalogs)
            assert mode is GenerationMode.NEGATIVE and op.path in ("/healthz", "/readyz",
                                                                   "/v1/catalogs")
    assert sum(seen.values()) >= 4 * 5  # examples really ran
    assert not {s for s in seen if s >= 500}
    assert (200 if mode is GenerationMode.POSITIVE else 422) in seen, seen
