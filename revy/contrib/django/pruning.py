"""Retention: deleting old history in set-based batches (`manage.py revy_prune`).

What goes is said once, as a `Prune` (a cutoff, content types, how many deltas of each object
to keep); the database does the rest. Deltas go in batches of consecutive ids: one cheap
index-ordered read finds where a batch of `batch` candidate ids ends, then three statements
in one transaction delete, within that id range, the object deltas, then their attribute
deltas and aggregates (those whose parent is gone), each a `DELETE ... WHERE <condition>`
on the database's side. No id and no row travels to Python, so memory stays constant however
large the history; each batch starts where the last one ended, so nothing is scanned twice.
Revisions left without deltas go last, in batches the same way.

`keep_last=N` keeps each object's N most recent deltas: a delta goes only if its object has an
N-th delta newer than it, an `EXISTS` probing at most N entries of the (content type, content
id, id) index per delta, so the cost grows with the deltas pruned, not with their square.

What pruning keeps:

- erasure records (`revy.erased` events, `revy.contrib.django.erasure`): the proof that an
  erasure was made, which holds no erased value, outlives the retention period. Only deleting
  a model's whole history (content types and no cutoff) deletes them, so that its content
  type can go too.
- every state-bearing delta holds the row's full state, so later deltas never need earlier
  ones. A row unchanged since the cutoff loses all its history, its `Baseline` included
  (`keep_last=1` keeps every row's latest state instead); `revy_baseline` records it again.
"""

from __future__ import annotations

import datetime
import functools
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from revy.contrib.django.erasure import ERASURE_EVENT
from revy.contrib.django.models import ObjectDeltaAggregate
from revy.contrib.django.utils import (
    get_attribute_delta_model,
    get_object_delta_model,
    get_revision_model,
)

__all__ = ["BATCH", "Counts", "Prune"]

# Object deltas (or revisions) per batch, each batch one transaction.
BATCH = 10000


@dataclass
class Counts:
    """Rows deleted (or, for a dry run, that would be)."""

    object_deltas: int = 0
    attribute_deltas: int = 0
    aggregates: int = 0
    revisions: int = 0

    def __str__(self) -> str:
        return (
            f"{self.object_deltas} object deltas, {self.attribute_deltas} attribute deltas, "
            f"{self.aggregates} aggregates and {self.revisions} empty revisions"
        )


@dataclass(frozen=True)
class Prune:
    """What to delete: deltas created before `cutoff` (any time if None) of the content types
    `content_types` (any if None), except each object's `keep_last` most recent deltas and
    erasure records; then the revisions left empty (created before `cutoff`)."""

    using: str
    cutoff: datetime.datetime | None = None
    content_types: Sequence[int] | None = None
    keep_last: int = 0
    batch: int = BATCH
    counts: Counts = field(default_factory=Counts, compare=False)

    def __post_init__(self) -> None:
        if self.cutoff is None and self.content_types is None:
            raise ValueError("Prune needs a cutoff, content types or both.")
        if self.keep_last < 0:
            raise ValueError("keep_last must be zero or more.")
        if self.batch < 1:
            raise ValueError("batch must be one or more.")

    # What goes.

    def candidates(self) -> QuerySet:
        """Object deltas in scope before keep-last and erasure records: what batches walk."""
        deltas = get_object_delta_model()._base_manager.using(self.using).all()
        if self.cutoff is not None:
            deltas = deltas.filter(created_at__lt=self.cutoff)
        if self.content_types is not None:
            deltas = deltas.filter(content_type_id__in=self.content_types)
        return deltas

    def kept(self) -> list[Q]:
        """The conditions on a candidate object delta, each of which keeps it."""
        kept: list[Q] = []
        if self.cutoff is not None:
            # Erasure records outlive retention; a model's whole history (no cutoff) takes
            # them along.
            kept.append(Q(event_type=ERASURE_EVENT))
        if self.keep_last:
            newer = get_object_delta_model()._base_manager.filter(
                content_type_id=OuterRef("content_type_id"),
                content_id=OuterRef("content_id"),
                id__gt=OuterRef("id"),
            )
            # Kept unless its object has a keep_last-th newer delta: at most keep_last index
            # entries read per delta (order is irrelevant to whether that row exists).
            kept.append(~Q(Exists(newer.values("id")[self.keep_last - 1 : self.keep_last])))
        return kept

    def object_deltas(self) -> QuerySet:
        """Every object delta that goes."""
        deltas = self.candidates()
        for condition in self.kept():
            deltas = deltas.exclude(condition)
        return deltas

    def surviving(self) -> Q:
        """The condition on any object delta that it stays."""
        survives = self.kept()
        if self.cutoff is not None:
            survives.append(Q(created_at__gte=self.cutoff))
        if self.content_types is not None:
            survives.append(~Q(content_type_id__in=self.content_types))
        return functools.reduce(operator.or_, survives)

    def revisions(self) -> QuerySet:
        """Revisions without deltas (created before the cutoff): after pruning, empty ones."""
        revisions = get_revision_model()._base_manager.using(self.using).all()
        if self.cutoff is not None:
            revisions = revisions.filter(created_at__lt=self.cutoff)
        return revisions

    def empty(self, revisions: QuerySet, *, after: bool) -> QuerySet:
        """`revisions` without object or attribute deltas (`after`: once pruning is done)."""
        deltas = (
            get_object_delta_model()
            ._base_manager.using(self.using)
            .filter(revision_id=OuterRef("pk"))
        )
        if after:
            deltas = deltas.filter(self.surviving())
            return revisions.exclude(Exists(deltas))
        attributes = (
            get_attribute_delta_model()
            ._base_manager.using(self.using)
            .filter(revision_id=OuterRef("pk"))
        )
        return revisions.exclude(Exists(deltas)).exclude(Exists(attributes))

    def aggregates_of_models(self) -> QuerySet | None:
        """Without a cutoff: the aggregates by which other rows' deltas name these models."""
        if self.cutoff is not None or self.content_types is None:
            return None
        return ObjectDeltaAggregate._base_manager.using(self.using).filter(
            content_type_id__in=self.content_types
        )

    # Counting and deleting.

    def count(self) -> Counts:
        """What `run` would delete, deleting nothing."""
        deltas = self.object_deltas().values("pk")
        attributes = get_attribute_delta_model()._base_manager.using(self.using)
        aggregates = ObjectDeltaAggregate._base_manager.using(self.using)
        counts = Counts(
            object_deltas=self.object_deltas().count(),
            attribute_deltas=attributes.filter(parent_id__in=deltas).count(),
            aggregates=aggregates.filter(delta_id__in=deltas).count(),
            revisions=self.empty(self.revisions(), after=True).count(),
        )
        of_models = self.aggregates_of_models()
        if of_models is not None:
            counts.aggregates += of_models.exclude(delta_id__in=deltas).count()
        return counts

    def run(self, progress: Callable[[Counts], None] | None = None) -> Counts:
        """Delete, batch after batch, calling `progress` after each; return the counts."""
        counts = self.counts
        attributes = get_attribute_delta_model()._base_manager.using(self.using)
        aggregates = ObjectDeltaAggregate._base_manager.using(self.using)
        doomed = self.object_deltas()
        parents = get_object_delta_model()._base_manager.using(self.using)
        for after, upto in self.ranges(self.candidates()):
            with transaction.atomic(using=self.using):
                # The object deltas first, so that their condition (keep-last's probes) is
                # evaluated once; then, in the same key range, the children left without a
                # parent (foreign keys are checked at commit).
                counts.object_deltas += doomed.filter(_between("pk", after, upto))._raw_delete(
                    self.using
                )
                counts.attribute_deltas += (
                    attributes.filter(_between("parent_id", after, upto))
                    .exclude(Exists(parents.filter(pk=OuterRef("parent_id"))))
                    ._raw_delete(self.using)
                )
                counts.aggregates += (
                    aggregates.filter(_between("delta_id", after, upto))
                    .exclude(Exists(parents.filter(pk=OuterRef("delta_id"))))
                    ._raw_delete(self.using)
                )
            if progress is not None:
                progress(counts)
        of_models = self.aggregates_of_models()
        if of_models is not None:
            for after, upto in self.ranges(of_models):
                counts.aggregates += of_models.filter(_between("pk", after, upto))._raw_delete(
                    self.using
                )
        revisions = self.revisions()
        empty = self.empty(revisions, after=False)
        for after, upto in self.ranges(revisions):
            counts.revisions += empty.filter(_between("pk", after, upto))._raw_delete(self.using)
            if progress is not None:
                progress(counts)
        return counts

    def ranges(self, queryset: QuerySet) -> Iterator[tuple[int | None, int]]:
        """Consecutive key ranges `(after, upto]` of `batch` rows of `queryset` each (`after`
        None: from the start).

        One index-ordered read per batch finds its last key (the `batch`-th after the previous
        batch's, or the last one): every range is closed, so that the children's deletes read
        no more of their key index than the batch covers.
        """
        keys = queryset.order_by("pk").values_list("pk", flat=True)
        after = None
        while True:
            rest = keys if after is None else keys.filter(pk__gt=after)
            end = list(rest[self.batch - 1 : self.batch]) or list(rest.order_by("-pk")[:1])
            if not end:
                return
            yield after, end[0]
            after = end[0]


def _between(name: str, after: int | None, upto: int | None) -> Q:
    """`after < name <= upto`, either end left open when None."""
    bounds = {}
    if after is not None:
        bounds[f"{name}__gt"] = after
    if upto is not None:
        bounds[f"{name}__lte"] = upto
    return Q(**bounds)
