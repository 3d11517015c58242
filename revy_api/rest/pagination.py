"""Cursor pagination for history: newest first, stable while new changes are recorded."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination

__all__ = ["HistoryCursorPagination"]


class HistoryCursorPagination(CursorPagination):
    """Newest first by id; `?page_size=` from 1 to 500 (larger values are capped), default 50.

    Ids grow with time, and a cursor keeps its place when newer rows arrive.
    """

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    page_size_query_description = "Results per page, from 1 to 500 (default 50)."
