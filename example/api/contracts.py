"""The API contracts generated from the demo project and checked in at the top of the repo.

- `export_graphql()` writes `schema/schema.graphql`, the SDL of `example.api.graphql.schema`.

Run with the demo's settings (`DJANGO_SETTINGS_MODULE=example.project.settings`); the test
suite regenerates each contract and fails with a diff when the checked-in one is stale.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GRAPHQL_SCHEMA = ROOT / "schema" / "schema.graphql"


def graphql_sdl() -> str:
    """Return the demo's GraphQL schema as SDL text, ending with a newline."""
    from example.api.graphql import schema

    return schema.as_str().rstrip("\n") + "\n"


def export_graphql(path: Path | str | None = None) -> Path:
    """Write the demo's GraphQL SDL to `path` (default `schema/schema.graphql`); return it."""
    target = Path(path) if path is not None else GRAPHQL_SCHEMA
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(graphql_sdl(), encoding="utf-8")
    return target
