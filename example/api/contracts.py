"""The API contracts generated from the demo project and checked in at the top of the repo.

- `export_openapi()` writes `openapi/openapi.yaml`, the OpenAPI document of the REST API
  (drf-spectacular, from `example.project.urls`).
- `export_graphql()` writes `schema/schema.graphql`, the SDL of `example.api.graphql.schema`.

`manage.py export_contracts` writes both (`--check` compares instead). The test suite
regenerates each contract and fails with a diff when the checked-in one is stale; the
OpenAPI document is generated with the demo's REST and drf-spectacular settings whatever the
settings of the process, so that it comes out the same from the test suite.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.test.utils import override_settings

ROOT = Path(__file__).resolve().parents[2]
GRAPHQL_SCHEMA = ROOT / "schema" / "schema.graphql"
OPENAPI_SCHEMA = ROOT / "openapi" / "openapi.yaml"
URLCONF = "example.project.urls"


@contextmanager
def demo_api_settings() -> Iterator[None]:
    """Apply the demo's REST framework and drf-spectacular settings, whatever the process's.

    Settings that views read when their classes are created (DRF's defaults for pagination,
    authentication...) are set on the demo's views themselves, not left to the settings.
    """
    from drf_spectacular.settings import patched_settings

    from example.project import settings as demo

    spectacular = {
        name: value
        for name, value in demo.SPECTACULAR_SETTINGS.items()
        if not name.startswith("SERVE_")  # how the document is served, not what it says
    }
    with override_settings(REST_FRAMEWORK=demo.REST_FRAMEWORK), patched_settings(spectacular):
        yield


def openapi_yaml() -> str:
    """Return the demo's OpenAPI document as YAML text; the same text for the same code."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiYamlRenderer

    with demo_api_settings():
        schema = SchemaGenerator(urlconf=URLCONF).get_schema(request=None, public=True)
        return OpenApiYamlRenderer().render(schema, renderer_context={}).decode()


def graphql_sdl() -> str:
    """Return the demo's GraphQL schema as SDL text, ending with a newline."""
    from example.api.graphql import schema

    return schema.as_str().rstrip("\n") + "\n"


def export_openapi(path: Path | str | None = None) -> Path:
    """Write the demo's OpenAPI document to `path` (default `openapi/openapi.yaml`)."""
    return _write(Path(path) if path is not None else OPENAPI_SCHEMA, openapi_yaml())


def export_graphql(path: Path | str | None = None) -> Path:
    """Write the demo's GraphQL SDL to `path` (default `schema/schema.graphql`); return it."""
    return _write(Path(path) if path is not None else GRAPHQL_SCHEMA, graphql_sdl())


def shown(path: Path) -> Path:
    """`path` relative to the repository when it is inside, for messages."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def diff_against(path: Path, text: str) -> str:
    """Return a unified diff from the checked-in file to `text`; "" when they are equal."""
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    name = shown(path)
    return "".join(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"{name} (checked in)",
            tofile=f"{name} (generated)",
        )
    )


def _write(target: Path, text: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target
