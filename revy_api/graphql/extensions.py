"""`RevisionContextExtension`: one revy revision per GraphQL mutation operation.

Add it to the schema::

    schema = strawberry.Schema(query=Query, mutation=Mutation,
                               extensions=[RevisionContextExtension])

For each mutation operation it opens a `revy.Context` around the execution, reading the same
headers as the REST API (`X-Commit-Message`, `X-Perform-As-Organization`, `X-Request-ID`, see
`revy.contrib.django.headers`) after Django has authenticated the request. The actor is the
request's user, read when the first change is written, or the organization the user acts as.
Every change of the operation lands in one revision, named in the response as
`extensions.revisionId` (its Relay id) and in the `X-Revision-Id` header (its primary key).
A bad header answers a GraphQL error with `extensions.code` `BAD_REQUEST` or `FORBIDDEN` and
the operation does not run. Queries and subscriptions are left alone.

It works with strawberry's `GraphQLView` and `AsyncGraphQLView`: in an async execution the
hooks that touch the database run in a worker thread.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from functools import cache
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from strawberry import relay
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.utils.inspect import in_async_context

from revy.context import Context
from revy.contrib.django.headers import (
    REVISION_ID,
    HeaderError,
    RevisionHeaders,
    apply_headers,
    authenticated_user,
    read_headers,
)
from revy.contrib.django.revisions import pending_revision
from revy.contrib.django.utils import get_revision_model
from revy_api.graphql.errors import header_error
from revy_api.graphql.state import get_request

__all__ = ["RevisionContextExtension"]


class RevisionContextExtension(SchemaExtension):
    """Record each mutation operation as one revision, shaped by the revision headers.

    Override `get_revision_actor(request)` to choose another actor than the request's user.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> RevisionContextExtension:
        # Strawberry picks sync or async hooks from the extension's class, and one schema
        # serves both kinds of views; strawberry-django decides the same way (a running
        # event loop means an async execution), so the async variant is chosen here.
        if in_async_context() and not issubclass(cls, _AsyncHooks):
            cls = _async_variant(cls)  # type: ignore[arg-type]
        return super().__new__(cls)

    def __init__(self, *, execution_context: Any = None) -> None:
        super().__init__(execution_context=execution_context)
        self.revision_pk: Any = None

    # Extension points -------------------------------------------------------------------

    def get_revision_actor(self, request: HttpRequest | None) -> Any:
        """Return the actor of the operation's changes (called at the first write)."""
        return authenticated_user(request) if request is not None else None

    # Hooks ------------------------------------------------------------------------------

    def on_execute(self) -> Generator[None, None, None]:
        if not self._is_mutation():
            yield
            return
        request = get_request(self.execution_context.context)
        try:
            headers = self._read(request)
        except HeaderError as error:
            self._refuse(error)
            yield
            return
        with Context(actor=lambda: self.get_revision_actor(request)):
            try:
                self._apply(request, headers)
            except HeaderError as error:
                self._refuse(error)
                yield
                return
            yield
            self._finish()

    def get_results(self) -> dict[str, Any]:
        if self.revision_pk is None:
            return {}
        return {"revisionId": relay.to_base64("Revision", self.revision_pk)}

    # Steps ------------------------------------------------------------------------------

    def _is_mutation(self) -> bool:
        try:
            return self.execution_context.operation_type == OperationType.MUTATION
        except RuntimeError:  # no operation to run: strawberry reports that itself
            return False

    @staticmethod
    def _read(request: HttpRequest | None) -> RevisionHeaders:
        return read_headers(request) if request is not None else RevisionHeaders()

    def _apply(self, request: HttpRequest | None, headers: RevisionHeaders) -> None:
        """Put the headers into the open context (database access: sync only)."""
        if request is None:
            return
        organization = apply_headers(request, headers)
        if organization is not None:
            Context.set_actor(organization)

    def _refuse(self, error: HeaderError) -> None:
        """Answer the header error instead of running the operation."""
        self.execution_context.result = ExecutionResult(data=None, errors=[header_error(error)])

    def _finish(self) -> None:
        """Remember the revision the operation wrote to, if it still exists."""
        revision = pending_revision()
        if revision is None:
            return
        result = self.execution_context.result
        if getattr(result, "errors", None):
            # A failed write may have rolled back the transaction that created it.
            model = get_revision_model()
            if not model._base_manager.filter(pk=revision.pk).exists():
                return
        self.revision_pk = revision.pk
        response = getattr(self.execution_context.context, "response", None)
        if response is not None:
            response[REVISION_ID] = str(revision.pk)


class _AsyncHooks:
    """The async execution's hooks: the same steps, the database ones in a worker thread."""

    async def on_execute(self: Any) -> AsyncGenerator[None, None]:
        if not self._is_mutation():
            yield
            return
        request = get_request(self.execution_context.context)
        try:
            headers = self._read(request)
        except HeaderError as error:
            self._refuse(error)
            yield
            return
        async with Context(actor=lambda: self.get_revision_actor(request)):
            try:
                # Context values set in the thread come back to this task (asgiref copies
                # the context both ways).
                await sync_to_async(self._apply)(request, headers)
            except HeaderError as error:
                self._refuse(error)
                yield
                return
            yield
            await sync_to_async(self._finish)()


@cache
def _async_variant(cls: type[RevisionContextExtension]) -> type[RevisionContextExtension]:
    return type(cls.__name__, (_AsyncHooks, cls), {"__module__": cls.__module__})
