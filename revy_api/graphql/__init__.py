"""revy's GraphQL API for strawberry-graphql-django.

- `RevisionContextExtension`: one revision per mutation operation, from the request headers.
- `QueryLimits`: refuses documents too large, with too many aliases or nested too deeply.
- `RevisionQuery` and `RevisionMutation`: root fields to mix into your `Query` and `Mutation`
  (`RevisionQuery` includes a Relay `node(id:)` field for revisions and object deltas).
- `GraphQLView` and `AsyncGraphQLView`: strawberry's views, authenticated with Django REST
  framework's authentication classes (tokens work as over REST), every error coded.
- `history_field()`: a row's history on any strawberry-django type.
- Types: `Revision`, `ObjectDelta` (Relay nodes), `AttributeDelta`, `ActorRef`, `ContentRef`,
  their connections, the results of snapshots, diffs, rollbacks and reverts, and the rows of
  `deletedObjects` (`DeletedObject`) and `objectsAsOf` (`PastObject`).

Errors reach clients as GraphQL errors with a stable `extensions.code` (see
`revy_api.graphql.errors`).
"""

from revy_api.graphql.connections import HistoryConnection, HistoryEdge
from revy_api.graphql.extensions import RevisionContextExtension
from revy_api.graphql.fields import history_field
from revy_api.graphql.filters import HistoryFilter
from revy_api.graphql.limits import QueryLimits
from revy_api.graphql.mutations import RevisionMutation
from revy_api.graphql.past import (
    DeletedObject,
    DeletedObjectConnection,
    PastObject,
    PastObjectConnection,
    PastObjectEdge,
)
from revy_api.graphql.payloads import (
    FieldChange,
    ObjectDiff,
    RevertResult,
    RollbackResult,
    Snapshot,
)
from revy_api.graphql.queries import ChangesPage, RevisionQuery
from revy_api.graphql.types import (
    ActorRef,
    AttributeAction,
    AttributeDelta,
    ContentRef,
    DeltaAction,
    ObjectDelta,
    ObjectDeltaConnection,
    Revision,
    RevisionConnection,
)
from revy_api.graphql.views import AsyncGraphQLView, GraphQLView

__all__ = [
    "ActorRef",
    "AsyncGraphQLView",
    "AttributeAction",
    "AttributeDelta",
    "ChangesPage",
    "ContentRef",
    "DeletedObject",
    "DeletedObjectConnection",
    "DeltaAction",
    "FieldChange",
    "GraphQLView",
    "HistoryConnection",
    "HistoryEdge",
    "HistoryFilter",
    "ObjectDelta",
    "ObjectDeltaConnection",
    "ObjectDiff",
    "PastObject",
    "PastObjectConnection",
    "PastObjectEdge",
    "QueryLimits",
    "RevertResult",
    "Revision",
    "RevisionConnection",
    "RevisionContextExtension",
    "RevisionMutation",
    "RevisionQuery",
    "RollbackResult",
    "Snapshot",
    "history_field",
]
