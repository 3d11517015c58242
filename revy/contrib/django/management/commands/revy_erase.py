"""`manage.py revy_erase`: the right to be forgotten, in history.

    revy_erase --actor app_label.model:pk [--object app_label.model:pk] [--reason TEXT]
               [--by app_label.model:pk] [--database ALIAS] [--dry-run]

Redacts what history holds about a person (`--actor`: what they did) and/or a row
(`--object`: its values) while keeping its structure, and records the erasure (by `--by`, or
the system, with `--reason`); see `revy.contrib.django.erasure`. `--dry-run` prints the counts
and writes nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import router

from revy import Context
from revy.contrib.django.erasure import erase
from revy.contrib.django.management.options import parse_row_option
from revy.contrib.django.utils import get_object_delta_model

__all__ = [
    "Command",
]


class Command(BaseCommand):
    help = "Erase a person's or a row's values from history, keeping its structure."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--actor", metavar="APP_LABEL.MODEL:PK", help="Erase this actor from what it did."
        )
        parser.add_argument(
            "--object", metavar="APP_LABEL.MODEL:PK", help="Erase this row's recorded values."
        )
        parser.add_argument("--reason", default="", help="Why (recorded with the erasure).")
        parser.add_argument(
            "--by", metavar="APP_LABEL.MODEL:PK", help="Who erases (default: the system)."
        )
        parser.add_argument("--database", help="The database of the history (default: routed).")
        parser.add_argument("--dry-run", action="store_true", help="Count, change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["actor"] and not options["object"]:
            raise CommandError("Say what to erase: --actor APP_LABEL.MODEL:PK and/or --object.")
        actor = options["actor"] and parse_row_option(options["actor"], "--actor")
        obj = options["object"] and parse_row_option(options["object"], "--object")
        by = None
        if options["by"]:
            model, pk = parse_row_option(options["by"], "--by")
            by = model._base_manager.filter(pk=pk).first()
            if by is None:
                raise CommandError(f"--by: there is no {options['by']}.")
        using = options["database"] or router.db_for_write(get_object_delta_model())
        description = "Erasure" + (f": {options['reason']}" if options["reason"] else "")
        with Context(actor=by, revision_description=description):
            results = erase(
                actor=actor or None,
                obj=obj or None,
                reason=options["reason"],
                dry_run=options["dry_run"],
                using=using,
            )
        verb = "Would erase" if options["dry_run"] else "Erased"
        for result in results:
            self.stdout.write(
                f"{verb} {result.subject} {result.type}:{result.id}: "
                f"{result.object_deltas} object deltas, {result.attribute_deltas} attribute "
                f"deltas, {result.revisions} revisions."
            )
