"""`manage.py revy_prune`: delete old history, or the history of models that are gone.

    revy_prune --before DATE [--keep-last N] [--dry-run] [--batch-size N]
    revy_prune --model app_label.model [--model ...] [--before DATE] [--dry-run]
    revy_prune --stale [--dry-run]

Every state-bearing delta stores the row's full state, so pruning old deltas never breaks the
snapshots of later points. Deletes set-based in batches of consecutive ids (attribute deltas,
aggregates, object deltas; then revisions left without deltas), in constant memory, printing
progress after each batch (`revy.contrib.django.pruning`). `--before` keeps erasure records.
`--model` and `--stale` delete the history of a model (all of it, erasure records included, or
what is older than `--before`), including history that refers to it as an aggregate, so that
its content type can then be deleted (`remove_stale_contenttypes`). `--dry-run` prints what
would go, counted by the database.
"""

from __future__ import annotations

import datetime
import time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import router
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.timezone import get_current_timezone, is_naive, make_aware

from revy.contrib.django.pruning import BATCH, Counts, Prune
from revy.contrib.django.utils import get_object_delta_model

__all__ = [
    "Command",
    "parse_cutoff",
]


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
        parser.add_argument(
            "--batch-size",
            type=int,
            default=BATCH,
            metavar="N",
            help=f"Object deltas (or revisions) per batch and transaction (default {BATCH}).",
        )

    def handle(
        self,
        *args,
        before: str | None,
        model: list[str],
        stale: bool,
        keep_last: int,
        dry_run: bool,
        batch_size: int,
        verbosity: int = 1,
        **options,
    ) -> None:
        if keep_last < 0:
            raise CommandError("--keep-last must be zero or more.")
        if before is None and not model and not stale:
            raise CommandError(
                "Say what to delete: --before DATE, --model APP_LABEL.MODEL or --stale."
            )
        if batch_size < 1:
            raise CommandError("--batch-size must be one or more.")
        using = router.db_for_write(get_object_delta_model())
        cutoff = parse_cutoff(before) if before is not None else None
        content_types = self.content_types(using, model, stale) if model or stale else None
        prune = Prune(
            using,
            cutoff=cutoff,
            content_types=content_types,
            keep_last=keep_last,
            batch=batch_size,
        )
        scope = self.describe(cutoff, content_types)
        if dry_run:
            counts = prune.count()
            self.stdout.write(
                f"Would delete {counts.object_deltas} object deltas {scope} "
                f"({counts.attribute_deltas} attribute deltas, {counts.aggregates} aggregates, "
                f"{counts.revisions} empty revisions)."
            )
            return
        started = time.monotonic()

        def progress(counts: Counts) -> None:
            seconds = time.monotonic() - started
            rate = counts.object_deltas / seconds if seconds else 0
            self.stdout.write(
                f"Deleted {counts.object_deltas} object deltas, {counts.revisions} revisions "
                f"({seconds:.1f} s, {rate:.0f} object deltas/s)..."
            )

        counts = prune.run(progress if verbosity else None)
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {counts.object_deltas} object deltas and {counts.revisions} empty "
                f"revisions {scope} ({counts.attribute_deltas} attribute deltas, "
                f"{counts.aggregates} aggregates) in {time.monotonic() - started:.1f} s."
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
