"""`manage.py revy_baseline [app_label.Model ...]`: record the current state of existing rows.

Rows created before revy was installed (or changed outside any context) have no recorded
state, so their history cannot be snapshotted or rolled back to. A baseline gives each such row
one `Baseline` object delta (event type `app_label.model.baseline`) holding its full state, with
a `Set` attribute delta per recorded field, all in one revision per run.

By default only rows whose history does not hold their state are recorded: rows with no
state-bearing delta yet, and rows whose latest one is a deletion (re-created outside any
context). `--no-skip-existing` records every row. `--dry-run` counts without writing.

Rows are read as tuples (`values_list`), never as model instances, in chunks of
`REVY_BATCH_SIZE`; each chunk is written with one multi-row INSERT per history table and
statement size. Each model is recorded in one transaction, so an interrupted run can be started
again and carries on where it stopped.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models, router, transaction
from django.db.models import Max

from revy.context import Context
from revy.contrib.django import recorder, registry
from revy.contrib.django import settings as revy_settings
from revy.contrib.django.registry import ModelConfig
from revy.contrib.django.revisions import pending_revision
from revy.contrib.django.snapshots import STATE_ACTIONS
from revy.contrib.django.utils import get_object_delta_model

ACTION_BASELINE = "Baseline"


class Command(BaseCommand):
    help = (
        "Record the current state of existing rows of the named models (default: every tracked "
        "model) as Baseline deltas, so that their history has a starting point."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "labels",
            nargs="*",
            metavar="app_label[.Model]",
            help="Models (or whole apps) to record; default: every tracked model.",
        )
        parser.add_argument(
            "--skip-existing",
            action=argparse.BooleanOptionalAction,
            default=True,
            help=(
                "Skip rows whose history already holds their state (default). With "
                "--no-skip-existing, record every row."
            ),
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count the rows to record; write nothing."
        )
        parser.add_argument(
            "--description",
            default="Baseline",
            help='Description of the revision (default: "Baseline").',
        )

    def handle(
        self,
        *args: Any,
        labels: list[str],
        skip_existing: bool,
        dry_run: bool,
        description: str,
        **options: Any,
    ) -> None:
        self.verbosity = options.get("verbosity", 1)
        targets = self.resolve(labels)
        batch_size = revy_settings.batch_size()
        recorded = 0
        with Context(actor=None, revision_description=description):
            for config in targets:
                recorded += self.baseline(config, batch_size, skip_existing, dry_run)
            written = {pending_revision(using) for using in self.databases(targets)}
        revision_ids = ", ".join(str(revision.pk) for revision in written if revision)
        if dry_run:
            summary = f"Dry run: would record {recorded} rows of {len(targets)} models."
        elif recorded:
            summary = (
                f"Recorded {recorded} rows of {len(targets)} models in revision {revision_ids}."
            )
        else:
            summary = "Nothing to record: every row already has its state in history."
        if self.verbosity >= 1:
            self.stdout.write(self.style.SUCCESS(summary))

    # Which models ---------------------------------------------------------------------------

    def resolve(self, labels: Iterable[str]) -> list[ModelConfig]:
        """Return the configs of the models to record, each concrete model once."""
        if not labels:
            candidates = [model for model in registry.tracked_models() if not model._meta.proxy]
        else:
            candidates = []
            for label in labels:
                candidates.extend(self.models_of(label))
        configs: dict[type[models.Model], ModelConfig] = {}
        for model in candidates:
            config = registry.config_for(model)
            if config is None:
                raise CommandError(
                    f"{model._meta.label} is not tracked by revy (see REVY_MODELS and "
                    "REVY_EXCLUDED_MODELS), so it has no history to start."
                )
            configs.setdefault(config.model, config)
        return sorted(configs.values(), key=lambda config: config.label)

    def models_of(self, label: str) -> list[type[models.Model]]:
        if "." not in label:
            try:
                app_config = apps.get_app_config(label)
            except LookupError:
                raise CommandError(
                    f"Unknown app {label!r}. Name models as app_label.ModelName."
                ) from None
            return [
                model
                for model in app_config.get_models(include_auto_created=True)
                if registry.is_tracked(model) and not model._meta.proxy
            ]
        try:
            return [apps.get_model(label)]
        except (LookupError, ValueError):
            raise CommandError(
                f"Unknown model {label!r}. Name models as app_label.ModelName, e.g. auth.User."
            ) from None

    def databases(self, configs: Iterable[ModelConfig]) -> set[str]:
        return {router.db_for_write(config.model) for config in configs}

    # Recording ------------------------------------------------------------------------------

    def baseline(
        self, config: ModelConfig, batch_size: int, skip_existing: bool, dry_run: bool
    ) -> int:
        """Record (or count, in a dry run) the rows of one model; return how many."""
        model = config.model
        using = router.db_for_write(model)
        rows = (
            model._base_manager.using(using)
            .order_by(config.pk_attname)
            .values_list(*config.attnames)
        )
        total = rows.count()
        done = recorded = 0
        with transaction.atomic(using=using):
            for batch in _chunks(rows.iterator(chunk_size=batch_size), batch_size):
                done += len(batch)
                if skip_existing:
                    known = self.rows_with_state(config, using, batch)
                    batch = [
                        row for row in batch if config.content_id(config.pk_of(row)) not in known
                    ]
                if batch and not dry_run:
                    recorder.write(using, [self.change(config, row) for row in batch])
                recorded += len(batch)
                if self.verbosity >= 1:
                    self.stdout.write(f"{config.label}: {done}/{total} rows")
        if self.verbosity >= 1:
            verb = "would record" if dry_run else "recorded"
            skipped = total - recorded
            self.stdout.write(
                f"{config.label}: {verb} {recorded} of {total} rows"
                + (f" ({skipped} already in history)" if skipped else "")
            )
        return recorded

    def rows_with_state(self, config: ModelConfig, using: str, batch: list[tuple]) -> set[str]:
        """Return the content ids of the rows whose history already holds their state."""
        deltas = get_object_delta_model()._base_manager.using(using)
        latest = (
            deltas.filter(
                content_type_id=config.content_type_id(using),
                content_id__in=[config.content_id(config.pk_of(row)) for row in batch],
                action__in=STATE_ACTIONS,
            )
            .values("content_id")
            .annotate(last=Max("id"))
            .values("last")
        )
        # A row whose latest state is a deletion was re-created out of revy's sight.
        return set(
            deltas.filter(id__in=latest)
            .exclude(action="Delete")
            .values_list("content_id", flat=True)
        )

    def change(self, config: ModelConfig, row: tuple) -> recorder.Change:
        return recorder.Change(
            config,
            config.pk_of(row),
            ACTION_BASELINE,
            actor=None,
            description="",
            data=recorder.state_json(config, row),
            attributes=[
                (index, recorder.ACTION_SET, None, row[index], None, "")
                for index in config.recorded
            ],
            values=row,
        )


def _chunks(rows: Iterator[tuple], size: int) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
