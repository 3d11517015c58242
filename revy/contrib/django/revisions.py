"""The revision of a context: created lazily at the first write, kept while it exists.

A context's revision is inserted inside its first write's transaction. If that transaction,
or the savepoint the revision was created in, rolls back, the row is gone while the context
still holds it: the next write must notice and create (or put back) the revision. Transaction
markers record which transaction and savepoints a row was written in, so that this costs no
query in the common case.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, models, transaction
from django.utils import timezone

from revy.context import Context, current_scope
from revy.contrib.django.encoding import encode
from revy.contrib.django.inserts import table
from revy.contrib.django.utils import get_revision_model

__all__ = [
    "REVISION_COLUMNS",
    "adopt_revision",
    "current_revision",
    "current_revision_id",
    "marker_alive",
    "pending_revision",
    "pending_revision_values",
    "take_revision",
    "transaction_marker",
    "update_revision_metadata",
    "written_revisions",
]


REVISION_COLUMNS = ("description", "created_at", "metadata")
_REVISION_COLUMNS = REVISION_COLUMNS


def transaction_marker(using: str, own_block: bool = False) -> tuple | None:
    """Identify the transaction and savepoints open on `using` (None when there are none).

    `own_block`: the innermost atomic block is the caller's own and commits when it returns,
    so it does not count. A marker stays alive (`marker_alive`) until that transaction ends
    or one of those savepoints is released or rolled back.
    """
    connection = connections[using]
    blocks = connection.atomic_blocks
    if len(blocks) <= (1 if own_block else 0):
        return None
    # Atomic objects are reused by `@transaction.atomic` functions, call after call; the
    # list of commit hooks is replaced whenever a transaction ends, so together they tell one
    # transaction from the next.
    return (
        blocks[0],
        connection.run_on_commit,
        tuple(sid for sid in connection.savepoint_ids if sid),
    )


def marker_alive(marker: tuple, using: str) -> bool:
    """True while the transaction and every savepoint of `marker` are still open."""
    connection = connections[using]
    blocks = connection.atomic_blocks
    outer, hooks, savepoints = marker
    if not blocks or blocks[0] is not outer or connection.run_on_commit is not hooks:
        return False
    active = connection.savepoint_ids
    return all(sid in active for sid in savepoints)


class _RevisionHolder:
    """The revision created lazily for one scope and database, and whether it still exists.

    It is created inside the first write's transaction; if that transaction (or the savepoint
    it was created in) is rolled back, the next write must create a new one. Writes need only
    its id: the model instance is built the first time someone asks for it.
    """

    __slots__ = ("_instance", "_values", "durable", "marker", "model", "pk", "using")

    def __init__(
        self,
        model: type[models.Model],
        pk: Any,
        values: dict,
        using: str,
        instance: models.Model | None = None,
    ) -> None:
        self.model, self.pk, self._values, self.using = model, pk, values, using
        self._instance = instance
        self.marker = transaction_marker(using)
        self.durable = self.marker is None
        if not self.durable:
            transaction.on_commit(self._committed, using=using)

    @property
    def revision(self) -> models.Model:
        if self._instance is None:
            instance = self.model(pk=self.pk, **self._values)
            instance._state.adding = False
            instance._state.db = self.using
            self._instance = instance
        return self._instance

    def _committed(self) -> None:
        self.durable = True

    def is_valid(self, using: str) -> bool:
        if self.durable or marker_alive(self.marker, using):
            return True
        # A savepoint was released or the transaction ended without the commit hook running:
        # whether the revision was rolled back is unknown. Ask the database, by creation time
        # too: SQLite gives a rolled-back row's id to the next row, maybe another request's.
        created_at = self.revision.created_at
        rows = self.model._base_manager.using(using).filter(pk=self.pk)
        if created_at is not None:
            rows = rows.filter(created_at=created_at)
        if rows.exists():
            self.marker = transaction_marker(using)
            self.durable = self.marker is None
            return True
        return False


def _new_revision(using: str, metadata: dict | None) -> _RevisionHolder:
    model = get_revision_model()
    now = timezone.now()
    connection = connections[using]
    description = Context.get_revision_description() or ""
    (pk,) = table(model, _REVISION_COLUMNS).insert(
        using,
        [(description, connection.ops.adapt_datetimefield_value(now), encode(metadata or {}))],
    )
    values = {"description": description, "created_at": now, "metadata": metadata or {}}
    return _RevisionHolder(model, pk, values, using)


def pending_revision_values(using: str) -> tuple[Any, dict | None]:
    """For a write that creates the scope's revision in its own statement: the id of the
    scope's revision if it exists (and None), or None and the values of the one to create
    (`take_revision` keeps it once it is inserted). Outside a scope
    (`REVY_TRACK_OUTSIDE_CONTEXT`) every write creates its own. No given revision."""
    scope = current_scope()
    holder = scope.extras.get(("revision", using)) if scope is not None else None
    if holder is not None and holder.is_valid(using):
        return holder.pk, None
    metadata = (scope.extras.get("metadata") if scope is not None else None) or {}
    values = {
        "description": Context.get_revision_description() or "",
        "created_at": timezone.now(),
        "metadata": metadata,
        "metadata_json": encode(metadata),
    }
    return None, values


def take_revision(using: str, pk: Any, values: dict) -> None:
    """Make the revision a write inserted (`pending_revision_values`) the scope's revision."""
    scope = current_scope()
    if scope is None:
        return
    kept = {name: values[name] for name in REVISION_COLUMNS}
    scope.extras[("revision", using)] = _RevisionHolder(get_revision_model(), pk, kept, using)


def current_revision(using: str) -> models.Model:
    """Return the revision new deltas belong to, creating the scope's revision if needed."""
    revision = Context.get_revision()
    if revision is not None:
        return _given_revision(revision, using)
    return _scope_revision(using).revision


def current_revision_id(using: str) -> Any:
    """Return the id of `current_revision(using)`, without building its instance."""
    revision = Context.get_revision()
    if revision is not None:
        return _given_revision(revision, using).pk
    return _scope_revision(using).pk


def _scope_revision(using: str) -> _RevisionHolder:
    scope = current_scope()
    if scope is None:  # REVY_TRACK_OUTSIDE_CONTEXT: every write is its own revision
        return _new_revision(using, None)
    holder = scope.extras.get(("revision", using))
    if holder is None or not holder.is_valid(using):
        holder = scope.extras[("revision", using)] = _new_revision(
            using, scope.extras.get("metadata")
        )
    return holder


def _given_revision(revision: models.Model, using: str) -> models.Model:
    """Return a revision given to the context, putting its row back if a rollback undid it.

    A lazy revision is created at the first write, inside that write's transaction; it is
    called only once, so when that transaction (or savepoint) rolls back, the revision's row
    is gone while the context keeps the instance.
    """
    scope = current_scope()
    if scope is None or revision.pk is None:
        return revision
    key = ("given revision", using, id(revision))
    holder = scope.extras.get(key)
    if holder is None or holder.revision is not revision:
        scope.extras[key] = _given_holder(revision, using)
    elif not holder.is_valid(using):
        revision.save(force_insert=True, using=using)
        scope.extras[key] = _given_holder(revision, using)
    return revision


def _given_holder(revision: models.Model, using: str) -> _RevisionHolder:
    return _RevisionHolder(type(revision), revision.pk, {}, using, instance=revision)


def pending_revision(using: str = "default") -> models.Model | None:
    """Return the revision the current context has written to on `using`, if any.

    A revision whose row was rolled back (with the transaction or savepoint that created it)
    is not returned: what names it (`X-Revision-Id`, say) must name a revision that exists.
    """
    revision = Context.get_revision()
    scope = current_scope()
    if revision is not None:
        if scope is None or revision.pk is None:
            return revision
        holder = scope.extras.get(("given revision", using, id(revision)))
        return revision if holder is None or holder.is_valid(using) else None
    holder = scope.extras.get(("revision", using)) if scope is not None else None
    if holder is None or not holder.is_valid(using):
        return None
    return holder.revision


def update_revision_metadata(values: dict[str, Any]) -> None:
    """Merge `values` into the metadata of the current context's revision.

    Before the revision exists the values wait in the scope; afterwards the row is updated.
    """
    scope = current_scope()
    if scope is None:
        raise RuntimeError("update_revision_metadata() needs an open revy context.")
    scope.extras.setdefault("metadata", {}).update(values)
    for key, holder in scope.extras.items():
        if isinstance(key, tuple) and key[0] == "revision":
            revision = holder.revision
            revision.metadata = {**(revision.metadata or {}), **values}
            type(revision)._base_manager.using(key[1]).filter(pk=revision.pk).update(
                metadata=revision.metadata
            )


def adopt_revision(scope: Any, using: str, revision: models.Model) -> None:
    """Make an existing revision the one `scope` writes to on `using`.

    `Context.restore()` uses it so that a task continues the revision of the request that
    queued it.
    """
    scope.extras[("revision", using)] = _RevisionHolder(
        type(revision), revision.pk, {}, using, instance=revision
    )


def written_revisions(scope: Any) -> dict[str, Any]:
    """Map each database to the id of the revision `scope` has written there (and still has)."""
    found = {}
    for key, holder in list(scope.extras.items()):
        if isinstance(key, tuple) and key[0] == "revision" and holder.is_valid(key[1]):
            found[key[1]] = holder.pk
    return found
