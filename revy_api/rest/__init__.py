"""revy's REST API, for Django REST framework (documented with drf-spectacular).

- `RevisionContextMixin`: one revision per request, revision headers, `X-Revision-Id`.
- `HistoryMixin`: `history/`, `snapshot/`, `diff/` and `rollback/` on a ModelViewSet.
- `revy_api.rest.urls`: `revisions/` (with `revert/`), `deltas/`, `deleted/` and `changes/`.
- `problem_exception_handler`: RFC 9457 problem details, for revy's errors or your whole API.
"""

from revy_api.rest.exceptions import problem_exception_handler
from revy_api.rest.history import HistoryMixin
from revy_api.rest.mixins import ProblemDetailsMixin, RevisionContextMixin
from revy_api.rest.pagination import HistoryCursorPagination
from revy_api.rest.schema import RevyAutoSchema
from revy_api.rest.views import ChangesViewSet, DeletedViewSet, DeltaViewSet, RevisionViewSet

__all__ = [
    "ChangesViewSet",
    "DeletedViewSet",
    "DeltaViewSet",
    "HistoryCursorPagination",
    "HistoryMixin",
    "ProblemDetailsMixin",
    "RevisionContextMixin",
    "RevisionViewSet",
    "RevyAutoSchema",
    "problem_exception_handler",
]
