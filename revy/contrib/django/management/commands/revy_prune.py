"""`manage.py revy_prune`: delete old history, or the history of models that are gone.

    revy_prune --before DATE [--keep-last N] [--dry-run]
    revy_prune --model app_label.model [--model ...] [--before DATE] [--dry-run]
    revy_prune --stale [--dry-run]

Every state-bearing delta stores the row's full state, so pruning old deltas never breaks the
snapshots of later points. Deletes in batches, without loading model instances, and removes
revisions left without deltas. `--model` and `--stale` delete the history of a model (all of it,
or what is older than `--before`), including history that refers to it as an aggregate, so that
its content type can then be deleted (`remove_stale_contenttypes`).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import router, transaction
from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.timezone import get_current_timezone, is_naive, make_aware

from revy.contrib.django.models import ObjectDeltaAggregate
from revy.contrib.django.utils import (
    get_attribute_delta_model,
    get_object_delta_model,
    get_revision_model,
)

__all__ = [
    "Command",
    "key_batches",
    "parse_cutoff",
]


BATCH = 5000


def parse_cutoff(value: str) -> datetime.datetime:
    """Parse an ISO date (midnight, current time zone) or datetime."""
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"--before must be an ISO date or datetime, not {value!r}.")
        moment = datetime.datetime.combine(day, datetime.time())
    if is_naive(moment):
        moment = make_aware(moment, get_current_timezone())
    return moment


def key_batches(queryset: QuerySet) -> Iterator[list[int]]:
    """Yield the keys of `queryset` in batches of `BATCH`, in key order, for deleting.

    Keyset batches: each starts where the last ended instead of scanning again past what was
    deleted, and only one batch of keys is ever in memory.
    """
    queryset = queryset.order_by("pk")
    last = None
    while True:
        batch = queryset if last is None else queryset.filter(pk__gt=last)
        ids = list(batch.values_list("pk", flat=True)[:BATCH])
        if not ids:
            return
        last = ids[-1]
        yield ids


class Command(BaseCommand):
    help = "Delete history recorded before a date, optionally keeping each object's last N deltas."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--before", help="ISO date or datetime.")
        parser.add_argument(
            "--model",
            action="append",
            default=[],
            metavar="APP_LABEL.MODEL",
            help="Only the history of this model (its content type), even if the model is gone.",
        )
        parser.add_argument(
            "--stale",
            action="store_true",
            help="Only the history of models that no longer exist (stale content types).",
        )
        parser.add_argument(
            "--keep-last",
            type=int,
            default=0,
            metavar="N",
            help="Keep the N most recent deltas of every object, however old.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count, delete nothing.")

    def handle(
        self,
        *args,
        before: str | None,
        model: list[str],
        stale: bool,
        keep_last: int,
        dry_run: bool,
        **options,
    ) -> None:
        if keep_last < 0:
            raise CommandError("--keep-last must be zero or more.")
        if before is None and not model and not stale:
            raise CommandError(
                "Say what to delete: --before DATE, --model APP_LABEL.MODEL or --stale."
            )
        using = router.db_for_write(get_object_delta_model())
        cutoff = parse_cutoff(before) if before is not None else None
        deltas = get_object_delta_model()._base_manager.using(using).all()
        if cutoff is not None:
            deltas = deltas.filter(created_at__lt=cutoff)
        content_types = None
        if model or stale:
            content_types = self.content_types(using, model, stale)
            deltas = deltas.filter(content_type_id__in=content_types)
        if keep_last:
            ranked = get_object_delta_model()._base_manager.annotate(
                rank=Window(
                    RowNumber(),
                    partition_by=[F("content_type_id"), F("content_id")],
                    order_by=F("id").desc(),
                )
            )
            kept = ranked.filter(rank__lte=keep_last).values("id")
            deltas = deltas.exclude(id__in=kept)
        scope = self.describe(cutoff, content_types)
        if dry_run:
            self.stdout.write(f"Would delete {deltas.count()} object deltas {scope}.")
            return
        total = 0
        for ids in key_batches(deltas):
            with transaction.atomic(using=using):
                get_attribute_delta_model()._base_manager.using(using).filter(
                    parent_id__in=ids
                )._raw_delete(using)
                ObjectDeltaAggregate._base_manager.using(using).filter(
                    delta_id__in=ids
                )._raw_delete(using)
                get_object_delta_model()._base_manager.using(using).filter(id__in=ids)._raw_delete(
                    using
                )
            total += len(ids)
            self.stdout.write(f"Deleted {total} object deltas...")
        if content_types is not None and cutoff is None:
            # Other rows' deltas naming these models as aggregates.
            ObjectDeltaAggregate._base_manager.using(using).filter(
                content_type_id__in=content_types
            )._raw_delete(using)
        # The reverse relation of the delta model's revision key, which the django-stubs
        # plugin cannot see from the abstract base.
        revisions_model = get_revision_model()
        empty = revisions_model._base_manager.using(using).filter(
            object_deltas__isnull=True  # type: ignore[misc]
        )
        if cutoff is not None:
            empty = empty.filter(created_at__lt=cutoff)
        revisions = 0
        for ids in key_batches(empty):
            get_revision_model()._base_manager.using(using).filter(id__in=ids)._raw_delete(using)
            revisions += len(ids)
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {total} object deltas and {revisions} empty revisions {scope}."
            )
        )

    def content_types(self, using: str, labels: list[str], stale: bool) -> list[int]:
        """The content type ids named by --model (app_label.model) and --stale."""
        from django.contrib.contenttypes.models import ContentType

        found = []
        manager = ContentType.objects.db_manager(using)
        for label in labels:
            app_label, _, name = label.lower().partition(".")
            content_type = manager.filter(app_label=app_label, model=name).first()
            if content_type is None:
                raise CommandError(f"--model {label}: no such content type (app_label.model).")
            found.append(content_type.pk)
        if stale:
            found += [ct.pk for ct in manager.all() if ct.model_class() is None]
        return found

    def describe(self, cutoff, content_types) -> str:
        parts = []
        if content_types is not None:
            parts.append(f"of {len(content_types)} model(s)")
        if cutoff is not None:
            parts.append(f"before {cutoff}")
        return " ".join(parts)
