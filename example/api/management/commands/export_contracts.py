"""`manage.py export_contracts [--check]`: write (or check) the demo's API contracts."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from example.api import contracts


class Command(BaseCommand):
    help = (
        "Write openapi/openapi.yaml and schema/schema.graphql from the demo project. "
        "With --check, write nothing and fail with a diff when they are stale."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="Compare with the checked-in files instead of writing them.",
        )

    def handle(self, *args: Any, check: bool = False, **options: Any) -> None:
        documents = [
            (contracts.OPENAPI_SCHEMA, contracts.openapi_yaml, contracts.export_openapi),
            # GraphQL: the SDL of example.api.graphql.schema (revy_api.graphql).
            (contracts.GRAPHQL_SCHEMA, contracts.graphql_sdl, contracts.export_graphql),
        ]
        if not check:
            for _path, _render, export in documents:
                written = export()
                self.stdout.write(f"Wrote {contracts.shown(written)}")
            return
        diffs = [contracts.diff_against(path, render()) for path, render, _export in documents]
        if any(diffs):
            self.stdout.write("".join(diffs))
            raise CommandError(
                "The API contracts are stale: run `python example/manage.py export_contracts` "
                "and commit the result."
            )
        self.stdout.write("The API contracts are up to date.")
