"""Renderers of history exports: `/deltas/` as JSON lines or CSV, streamed.

A client asks with `Accept: application/x-ndjson` or `Accept: text/csv` (or `?format=ndjson`,
`?format=csv`); the view then streams every delta the filters select, in the formats of
`revy.contrib.django.export` (those of `manage.py revy_export`), instead of a JSON page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import models
from django.http import StreamingHttpResponse
from rest_framework.renderers import BaseRenderer

from revy.contrib.django import export

__all__ = ["CSVRenderer", "ExportRenderer", "NDJSONRenderer", "streaming_export"]


class ExportRenderer(BaseRenderer):
    """A history export format; views stream it with `streaming_export()`."""

    charset = "utf-8"
    export_format = ""
    filename = ""

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        # Views stream exports; this renders export records handed over as a list.
        items = data if isinstance(data, list) else [data]
        return "".join(export.lines(self.export_format, items)).encode(self.charset)


class NDJSONRenderer(ExportRenderer):
    """One object delta per line (JSON lines)."""

    media_type = "application/x-ndjson"
    format = "ndjson"
    export_format = "jsonl"
    filename = "deltas.jsonl"


class CSVRenderer(ExportRenderer):
    """One field change per row, after a header."""

    media_type = "text/csv"
    format = "csv"
    export_format = "csv"
    filename = "deltas.csv"


def streaming_export(
    queryset: models.QuerySet, renderer: ExportRenderer, *, newest_first: bool = True
) -> StreamingHttpResponse:
    """Stream every object delta of `queryset` in `renderer`'s format, in constant memory."""
    lines = export.lines(
        renderer.export_format, export.records(queryset, newest_first=newest_first)
    )
    response = StreamingHttpResponse(
        (line.encode(renderer.charset) for line in lines),
        content_type=f"{renderer.media_type}; charset={renderer.charset}",
    )
    response["Content-Disposition"] = f'inline; filename="{renderer.filename}"'
    return response
