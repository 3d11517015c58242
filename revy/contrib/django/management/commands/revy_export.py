"""`manage.py revy_export --format jsonl|csv`: write history out, streaming, with progress.

    revy_export --format jsonl|csv [--since DATE] [--until DATE] [--model app_label.model ...]
                [--actor app_label.model:pk|system] [--output FILE] [--database ALIAS]

Object deltas oldest first, in the formats of `revy.contrib.django.export` (the same as the
APIs' `/deltas/` with `Accept: application/x-ndjson` or `text/csv`). Memory stays flat
whatever the size of the history; progress goes to stderr, the export to stdout or `--output`.
"""

from __future__ import annotations

import time
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import router

from revy.contrib.django import export
from revy.contrib.django.management.options import (
    parse_model,
    parse_moment,
    parse_row_option,
)
from revy.contrib.django.references import reference
from revy.contrib.django.utils import get_object_delta_model

__all__ = [
    "Command",
]


SYSTEM = "system"


class Command(BaseCommand):
    help = "Export history (object deltas and their field changes) as JSON lines or CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", required=True, choices=export.FORMATS)
        parser.add_argument("--since", help="Recorded at or after (ISO date or datetime).")
        parser.add_argument("--until", help="Recorded at or before (ISO date or datetime).")
        parser.add_argument(
            "--model",
            action="append",
            default=[],
            metavar="APP_LABEL.MODEL",
            help="Only the history of this model (repeat for several).",
        )
        parser.add_argument(
            "--actor",
            metavar="APP_LABEL.MODEL:PK",
            help=f"Only what this actor did (or {SYSTEM!r}), on the delta or a field of it.",
        )
        parser.add_argument("--output", metavar="FILE", help="Write here instead of stdout.")
        parser.add_argument("--database", help="The database of the history (default: routed).")
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=export.CHUNK_SIZE,
            help=f"Object deltas read per query (default {export.CHUNK_SIZE}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["chunk_size"] < 1:
            raise CommandError("--chunk-size must be at least 1.")
        model = get_object_delta_model()
        using = options["database"] or router.db_for_read(model)
        deltas = model._base_manager.using(using).all()
        if options["since"]:
            deltas = deltas.filter(created_at__gte=parse_moment(options["since"], "--since"))
        if options["until"]:
            deltas = deltas.filter(created_at__lte=parse_moment(options["until"], "--until"))
        if options["model"]:
            types = ContentType.objects.db_manager(using).get_for_models(
                *(parse_model(label, "--model") for label in options["model"]),
                for_concrete_models=True,
            )
            deltas = deltas.filter(content_type__in=list(types.values()))
        if options["actor"]:
            deltas = self.by_actor(deltas, options["actor"], using)
        total = deltas.count()
        items = self.progress(
            export.records(deltas, chunk_size=options["chunk_size"]), total, options
        )
        out = (
            open(options["output"], "w", encoding="utf-8", newline="")  # noqa: SIM115
            if options["output"]
            else None
        )
        try:
            for line in export.lines(options["format"], items):
                if out is not None:
                    out.write(line)
                else:
                    self.stdout.write(line, ending="")
        finally:
            if out is not None:
                out.close()

    def by_actor(self, deltas: Any, actor: str, using: str) -> Any:
        if actor == SYSTEM:
            return export.by_actor(deltas, None, None)
        model, pk = parse_row_option(actor, "--actor")
        ref = reference(model(pk=pk))
        type_id = ContentType.objects.db_manager(using).get_for_model(model).pk
        return export.by_actor(deltas, type_id, ref["id"])

    def progress(self, items: Any, total: int, options: dict[str, Any]) -> Any:
        """Pass `items` through, saying on stderr how far the export has come."""
        verbose = options.get("verbosity", 1) > 0
        started = last = time.monotonic()
        done = 0
        for item in items:
            yield item
            done += 1
            now = time.monotonic()
            if verbose and now - last >= 1:
                last = now
                percent = 100 * done / total if total else 100
                self.stderr.write(f"Exported {done:,} of {total:,} object deltas ({percent:.0f}%)")
        if verbose:
            elapsed = time.monotonic() - started
            self.stderr.write(f"Exported {done:,} object deltas in {elapsed:.1f} s.")
