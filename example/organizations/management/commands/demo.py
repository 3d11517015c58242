"""`manage.py demo [--port 8000] [--no-serve]`: the demo in one command.

Migrates the SQLite database (`example/demo.sqlite3`, or `$REVY_DEMO_DB`), seeds it when it
holds no demo data yet (`seed_demo`), prints where to look and how to log in, then runs
Django's development server on 127.0.0.1. `--no-serve` stops after the preparation (tests use
it); `python3 dev.py demo` runs this command in a virtualenv made for it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from example.organizations.management.commands.seed_demo import USERS, is_seeded

HOST = "127.0.0.1"

# (what, path) pairs printed for the user, in the order a newcomer would visit them.
PAGES = (
    ("Admin (history pages, restore)", "/admin/"),
    ("Swagger UI (REST API docs)", "/api/docs/"),
    ("REST API root: revisions", "/api/revisions/"),
    ("GraphiQL (GraphQL)", "/graphql/"),
)


class Command(BaseCommand):
    help = (
        "Prepare the demo (migrate, seed when empty), print its URLs and logins, then run the "
        "development server on 127.0.0.1."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--port", type=int, default=8000, help="Port of the server (default: 8000)."
        )
        parser.add_argument(
            "--no-serve",
            action="store_true",
            help="Only migrate, seed and print the URLs; do not start the server.",
        )

    def handle(self, *args: Any, port: int = 8000, no_serve: bool = False, **options: Any) -> None:
        database = settings.DATABASES["default"]["NAME"]
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write(f"Database: {database} (migrated)")
        if is_seeded():
            self.stdout.write("Demo data: already there (manage.py seed_demo --reset starts over).")
        else:
            call_command("seed_demo", stdout=self.stdout)
        self.stdout.write(self.banner(port))
        if no_serve:
            return
        # No autoreloader: it would start this command again in a child process.
        call_command("runserver", f"{HOST}:{port}", use_reloader=False)

    def banner(self, port: int) -> str:
        """The URLs and demo logins, as printed before the server starts."""
        base = f"http://{HOST}:{port}"
        width = max(len(title) for title, _ in PAGES)
        lines = ["", self.style.SUCCESS("revy demo"), ""]
        lines += [f"  {title:<{width}}  {base}{path}" for title, path in PAGES]
        lines += ["", "  Logins (user / password, API token, what they may do):"]
        logins = [(f"{user.username} / {user.password}", user) for user in USERS]
        login_width = max(len(login) for login, _ in logins)
        token_width = max(len(user.token or "") for user in USERS) + len("token ")
        for login, user in logins:
            token = f"token {user.token}" if user.token else "no token"
            lines.append(f"    {login:<{login_width}}  {token:<{token_width}}  {user.role}")
        example_token = next(user.token for user in USERS if user.token)
        lines += [
            "",
            "  Try:",
            f'    curl -H "Authorization: Token {example_token}" {base}/api/revisions/',
            "",
        ]
        return "\n".join(lines)
