"""`manage.py demo [--port 8000] [--reset] [--no-serve]`: the demo in one command.

Migrates the SQLite database (`example/demo.sqlite3`, or `$REVY_DEMO_DB`), seeds it when it
holds no demo data yet (`seed_demo`; `--reset` empties it and seeds it again), prints where to
look and how to log in, then runs Django's development server on 127.0.0.1. `--no-serve`
stops after the preparation (tests use it); `python3 dev.py demo` runs this command in a
virtualenv made for it.

What each login may do is read from the database (model permissions, organizations it may act
as), so the banner cannot disagree with what the demo enforces.
"""

from __future__ import annotations

import textwrap
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from example.organizations.management.commands.seed_demo import USERS, is_seeded
from example.organizations.models import Organization

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
            "--reset",
            action="store_true",
            help="Empty the database and seed the demo again (seed_demo --reset).",
        )
        parser.add_argument(
            "--no-serve",
            action="store_true",
            help="Only migrate, seed and print the URLs; do not start the server.",
        )

    def handle(
        self,
        *args: Any,
        port: int = 8000,
        reset: bool = False,
        no_serve: bool = False,
        **options: Any,
    ) -> None:
        database = settings.DATABASES["default"]["NAME"]
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write(f"Database: {database} (migrated)")
        if reset:
            call_command("seed_demo", reset=True, stdout=self.stdout)
        elif is_seeded():
            self.stdout.write(
                "Demo data: already there (`python3 dev.py demo --reset` starts over)."
            )
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
        lines += ["", "  Logins (user / password, API token: what they may do):"]
        logins = [(f"{user.username} / {user.password}", user) for user in USERS]
        login_width = max(len(login) for login, _ in logins)
        token_width = max(len(user.token or "") for user in USERS) + len("token ")
        indent = " " * (4 + login_width + 2 + token_width + 2)
        for login, user in logins:
            token = f"token {user.token}" if user.token else "no token"
            first = f"    {login:<{login_width}}  {token:<{token_width}}  "
            lines += textwrap.wrap(
                may_do(user.username),
                width=100,
                initial_indent=first,
                subsequent_indent=indent,
                break_on_hyphens=False,
            )
        example_token = next(user.token for user in USERS if user.token)
        lines += [
            "",
            "  Try:",
            f'    curl -H "Authorization: Token {example_token}" {base}/api/revisions/',
            "",
        ]
        return "\n".join(lines)


def may_do(username: str) -> str:
    """Say what a demo login may do, from its permissions and memberships in the database.

    "staff: organizations, ledger, garage (add, change, delete, view); acts as Acme Corp".
    """
    user = get_user_model().objects.get(username=username)
    if user.is_superuser:
        return "superuser: everything"
    # Per app, the actions its every model allows; an app whose models differ lists them.
    actions: dict[str, dict[str, set[str]]] = {}
    permissions = Permission.objects.filter(user=user).select_related("content_type")
    for permission in permissions:
        action = permission.codename.split("_", 1)[0]
        app_label, model = permission.content_type.app_label, permission.content_type.model
        actions.setdefault(app_label, {}).setdefault(model, set()).add(action)
    groups: dict[str, list[str]] = {}  # "add, change, view" -> the apps or models allowing it
    for app_label, models in actions.items():
        if len({frozenset(allowed) for allowed in models.values()}) == 1:
            groups.setdefault(_actions(next(iter(models.values()))), []).append(app_label)
        else:
            for model, allowed in models.items():
                groups.setdefault(_actions(allowed), []).append(f"{app_label}.{model}")
    parts = [f"{', '.join(where)} ({allowed})" for allowed, where in groups.items()]
    what = ", ".join(parts) if parts else "no model permissions"
    staff = "staff" if user.is_staff else "no admin"
    organizations = Organization.objects.filter(memberships__user=user).order_by("name")
    names = ", ".join(organization.name for organization in organizations)
    return f"{staff}: {what}" + (f"; acts as {names}" if names else "")


def _actions(allowed: set[str]) -> str:
    return ", ".join(sorted(allowed))
