"""Cursor pagination for history: newest first, stable while new changes are recorded."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from revy_api import inputs
from revy_api.errors import BadRequest

__all__ = ["HistoryCursorPagination", "LinkHeaderPagination", "link_header"]


def link_header(links: dict[str, str | None]) -> str | None:
    """Return an RFC 8288 `Link` header value for `{rel: url}` (None: no links)."""
    values = [f'<{url}>; rel="{rel}"' for rel, url in links.items() if url]
    return ", ".join(values) or None


class LinkHeaderPagination:
    """Add to a Django REST framework pagination class: pages name the next and previous
    ones in a `Link` header (RFC 8288) too, for clients that follow links."""

    def get_paginated_response(self, data: Any) -> Response:
        response = super().get_paginated_response(data)  # type: ignore[misc]
        link = link_header({"next": self.get_next_link(), "prev": self.get_previous_link()})  # type: ignore[attr-defined]
        if link:
            response["Link"] = link
        return response


class HistoryCursorPagination(LinkHeaderPagination, CursorPagination):
    """Newest first by id; `?page_size=` from 1 to 500 (larger values are capped), default 50.

    Ids grow with time, and a cursor keeps its place when newer rows arrive. Responses carry
    the next and previous pages in the body and in a `Link` header (RFC 8288). A page size
    that is not a positive integer is a 400; a cursor this API did not make is a 404.
    """

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    page_size_query_description = "Results per page, from 1; above 500 is 500 (default 50)."

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = inputs.integer(raw, self.page_size_query_param)
        except BadRequest as error:
            raise ValidationError({self.page_size_query_param: [error.detail]}) from None
        if size < 1:
            raise ValidationError(
                {self.page_size_query_param: ["The page size must be 1 or more."]}
            )
        return min(size, self.max_page_size)

    def decode_cursor(self, request: Request) -> Cursor | None:
        cursor = super().decode_cursor(request)
        # The position is an id this pagination wrote: anything else was made by hand.
        if cursor is not None and cursor.position is not None:
            position = str(cursor.position)
            if not (position.isascii() and position.isdigit()) or int(position) > inputs.MAX_ID:
                raise NotFound(self.invalid_cursor_message)
        return cursor

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "The `next` or `previous` link's cursor.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": self.page_size_query_description,
                "schema": {"type": "integer", "minimum": 1},
            },
        ]
