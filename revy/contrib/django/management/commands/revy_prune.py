"""`manage.py revy_prune --before DATE [--keep-last N] [--dry-run]`: delete old history.

Every state-bearing delta stores the row's full state, so pruning old deltas never breaks the
snapshots of later points. Deletes in batches, without loading model instances, and removes
revisions left without deltas.
"""

from __future__ import annotations

import datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import router, transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.timezone import get_current_timezone, is_naive, make_aware

from revy.contrib.django.models import ObjectDeltaAggregate
from revy.contrib.django.utils import (
    get_attribute_delta_model,
    get_object_delta_model,
    get_revision_model,
)

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


class Command(BaseCommand):
    help = "Delete history recorded before a date, optionally keeping each object's last N deltas."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--before", required=True, help="ISO date or datetime.")
        parser.add_argument(
            "--keep-last",
            type=int,
            default=0,
            metavar="N",
            help="Keep the N most recent deltas of every object, however old.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count, delete nothing.")

    def handle(self, *args, before: str, keep_last: int, dry_run: bool, **options) -> None:
        if keep_last < 0:
            raise CommandError("--keep-last must be zero or more.")
        cutoff = parse_cutoff(before)
        deltas = get_object_delta_model()._base_manager.filter(created_at__lt=cutoff)
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
        if dry_run:
            self.stdout.write(f"Would delete {deltas.count()} object deltas before {cutoff}.")
            return
        using = router.db_for_write(get_object_delta_model())
        total = 0
        while True:
            ids = list(deltas.values_list("id", flat=True)[:BATCH])
            if not ids:
                break
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
        empty = (
            get_revision_model()
            ._base_manager.using(using)
            .filter(created_at__lt=cutoff, object_deltas__isnull=True)
        )
        revisions = empty.count()
        get_revision_model()._base_manager.using(using).filter(
            id__in=list(empty.values_list("id", flat=True))
        )._raw_delete(using)
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {total} object deltas and {revisions} empty revisions before {cutoff}."
            )
        )
