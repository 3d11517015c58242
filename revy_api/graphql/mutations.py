"""`RevisionMutation`: rolling rows back and reverting revisions, as root mutation fields.

Mix it into your schema's mutation type and add `RevisionContextExtension` to the schema, so
that the change is recorded with the request's actor and headers::

    @strawberry.type
    class Mutation(RevisionMutation):
        ...

Both go through `revy_api.operations`, like the REST API, and the visibility policy decides:
a rollback needs to see the row's history and to change the row (to add it, when it was
deleted); a revert needs to see the revision, and to change, re-create or delete (cascades
included) every row it writes. Nothing is written when they fail.
"""

from __future__ import annotations

import datetime
from typing import Annotated, cast

import strawberry
from strawberry import Info
from strawberry.scalars import JSON
from strawberry_django import django_resolver

from revy_api import operations
from revy_api.graphql import arguments
from revy_api.graphql.errors import translating_errors
from revy_api.graphql.pages import attach_page
from revy_api.graphql.payloads import (
    RevertResult,
    RollbackResult,
    Snapshot,
    field_changes,
    recorded_state,
)
from revy_api.graphql.state import state_of
from revy_api.graphql.types import Revision

__all__ = ["RevisionMutation"]


@strawberry.type
class RevisionMutation:
    """Root mutation fields that write history back."""

    @strawberry.mutation(
        description="Restore one row to its state at a point (re-creating it if deleted). "
        "Give exactly one of revision, delta and at. Restoring the state the row already "
        "has records nothing."
    )
    @django_resolver
    def rollback_object(
        self,
        info: Info,
        type: Annotated[
            str, strawberry.argument(description="The row's model as `app_label.model`.")
        ],
        id: Annotated[strawberry.ID, strawberry.argument(description="The row's primary key.")],
        revision: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="The state after all of this revision's changes."),
        ] = None,
        delta: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="The state right after this object delta (just before it, for a "
                "deletion).",
            ),
        ] = None,
        at: Annotated[
            datetime.datetime | None, strawberry.argument(description="The state at this moment.")
        ] = None,
        dry_run: Annotated[
            bool | None,
            strawberry.argument(description="Only say what would change; write nothing."),
        ] = False,
        expected_etag: Annotated[
            str | None,
            strawberry.argument(
                description="The row's current ETag (`snapshot(type, id) { etag }`); "
                "PRECONDITION_FAILED when the row changed since."
            ),
        ] = None,
        cascade: Annotated[
            bool | None,
            strawberry.argument(
                description="Re-creating a deleted row, re-create too the rows its deletion "
                "took along (each needs the add permission)."
            ),
        ] = False,
    ) -> RollbackResult:
        state = state_of(info)
        state.require_login()
        model = arguments.model_for(type)
        pk = arguments.pk_for(model, id)
        state.require_view(model, pk)
        with translating_errors():
            at_point = arguments.point(revision=revision, delta=delta, at=at, required=True)
            result = operations.rollback(
                model,
                pk,
                at_point,
                user=state.user,
                dry_run=bool(dry_run),
                if_match=expected_etag,
                policy=state.policy,
                cascade=bool(cascade),
            )
        if result.revision is not None:
            attach_page([result.revision])
        return RollbackResult(
            type=type.lower(),
            id=strawberry.ID(str(pk)),
            # The row as the rollback makes it: for a dry run, what it would become.
            state=cast(JSON, recorded_state(result.target or result.instance)),
            etag=operations.etag(result.target or result.instance),
            changes=field_changes(result.changes),
            created=result.created,
            dry_run=result.dry_run,
            # strawberry-django resolves the revision model's instances through `Revision`.
            revision=cast("Revision | None", result.revision),
            cascaded=[
                Snapshot(
                    type=row.model._meta.label_lower,
                    id=strawberry.ID(row.delta.content_id),
                    state=cast(JSON, recorded_state(row.instance())),
                    etag=operations.etag(row.instance()),
                )
                for row in result.cascaded
            ],
        )

    @strawberry.mutation(
        description="Undo every change of a revision, as a new revision. CONFLICT (listing "
        "the later changes in `extensions.conflicts`) when later revisions changed the same "
        "fields, unless force is true."
    )
    @django_resolver
    def revert_revision(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID, strawberry.argument(description="The Relay id of the revision.")
        ],
        force: Annotated[
            bool | None, strawberry.argument(description="Revert even over later changes.")
        ] = False,
    ) -> RevertResult:
        state = state_of(info)
        state.require_login()
        with translating_errors():
            # One the user may not see is not found, and nothing about it is answered.
            reverted = operations.get_visible_revision(
                arguments.node_pk(id, "Revision", "id"), user=state.user, policy=state.policy
            )
            revision = operations.revert(
                reverted, user=state.user, force=bool(force), policy=state.policy
            )
        attach_page([reverted])
        if revision is not None:
            attach_page([revision])
        # strawberry-django resolves the revision model's instances through `Revision`.
        return RevertResult(
            reverted=cast(Revision, reverted), revision=cast("Revision | None", revision)
        )
