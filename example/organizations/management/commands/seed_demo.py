"""`manage.py seed_demo [--reset]`: fill the demo database with users, data and history.

The history tells a small story, one revision per step, so that every feature of revy has
something to show: several actors (alice, bob, the Acme organization, the system), commit
messages, a collaborative revision (alice books an amount, the system corrects the local
amount), a bulk update and its revert, a rollback, a deletion that cascades from a car to its
engine and cylinders, a `SET_NULL` deletion handler, and a custom event.

Idempotent: when the demo data is already there the command says so and changes nothing;
`--reset` empties the database first (`flush`) and seeds it again.

Users, permissions and API tokens are created outside any revy context, as if they had
existed before revy was installed: they have no history of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from rest_framework.authtoken.models import Token

from example.garage.models import Car, Cylinder, Engine
from example.ledger.models import Account, Transaction
from example.organizations.models import Membership, Organization
from revy import Context
from revy.contrib.django.events import record_event
from revy.contrib.django.history import history_of, revert, rollback
from revy.contrib.django.utils import get_revision_model


@dataclass(frozen=True)
class DemoUser:
    """A demo login: its password, API token and the model permissions it gets."""

    username: str
    password: str
    token: str | None
    superuser: bool = False
    permissions: tuple[str, ...] = ()


# Every model permission (view, add, change, delete) of these models.
ALL = ("add", "change", "delete", "view")
ALICE_PERMISSIONS = tuple(
    f"{label}:{action}"
    for label in (
        "organizations.organization",
        "organizations.membership",
        "ledger.account",
        "ledger.transaction",
        "garage.car",
        "garage.engine",
        "garage.cylinder",
    )
    for action in ALL
)
# Bob keeps the books but has nothing to do with the garage: the API hides its history from him.
BOB_PERMISSIONS = (
    "organizations.organization:view",
    "organizations.membership:view",
    *(f"ledger.account:{action}" for action in ("add", "change", "view")),
    *(f"ledger.transaction:{action}" for action in ("add", "change", "view")),
)

# What each may do is printed by `manage.py demo`, read back from the database.
USERS = (
    DemoUser("admin", "admin", None, superuser=True),
    DemoUser("alice", "alice", "alice-demo-token", permissions=ALICE_PERMISSIONS),
    DemoUser("bob", "bob", "bob-demo-token", permissions=BOB_PERMISSIONS),
)


def is_seeded() -> bool:
    """Return True when the demo data is in the database."""
    return Organization.objects.filter(slug="acme").exists()


class Command(BaseCommand):
    help = (
        "Create the demo's users (admin/admin, alice/alice, bob/bob, with API tokens), "
        "organizations, ledger and garage, and a history made by several actors. Does nothing "
        "when the data is already there, unless --reset is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Delete everything in the database (manage.py flush) and seed it again.",
        )

    def handle(self, *args: Any, reset: bool = False, **options: Any) -> None:
        verbosity = options.get("verbosity", 1)
        if reset:
            call_command("flush", interactive=False, verbosity=0)
            if verbosity:
                self.stdout.write("Emptied the database.")
        elif is_seeded():
            if verbosity:
                self.stdout.write(
                    "The demo data is already there; nothing to do "
                    "(`python3 dev.py demo --reset` starts over)."
                )
            return
        taken = get_user_model().objects.filter(username__in=[user.username for user in USERS])
        if taken.exists():
            names = ", ".join(sorted(taken.values_list("username", flat=True)))
            raise CommandError(
                f"The database has users named like the demo's ({names}) but no demo data. "
                "Run seed_demo --reset to empty it and seed it from scratch."
            )
        revisions_before = get_revision_model().objects.count()
        with transaction.atomic():
            users = create_users()
            Story(users).tell()
        if verbosity:
            revisions = get_revision_model().objects.count() - revisions_before
            self.stdout.write(
                self.style.SUCCESS(
                    f"Seeded the demo: {_count(len(users), 'user')}, "
                    f"{_count(Organization.objects.count(), 'organization')}, "
                    f"{_count(Transaction.objects.count(), 'transaction')}, "
                    f"{_count(Car.objects.count(), 'car')} and "
                    f"{_count(revisions, 'revision')} of history."
                )
            )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def create_users() -> dict[str, Any]:
    """Create the demo users with their permissions and API tokens (not tracked)."""
    user_model = get_user_model()
    users = {}
    for spec in USERS:
        if spec.superuser:
            user = user_model.objects.create_superuser(
                spec.username, f"{spec.username}@example.com", spec.password
            )
        else:
            user = user_model.objects.create_user(
                spec.username, f"{spec.username}@example.com", spec.password, is_staff=True
            )
            user.user_permissions.set(_permissions(spec.permissions))
        if spec.token:
            Token.objects.create(user=user, key=spec.token)
        users[spec.username] = user
    return users


def _permissions(names: tuple[str, ...]) -> list[Permission]:
    """Resolve `app_label.model:action` names to Permission rows."""
    wanted = []
    for name in names:
        label, action = name.split(":")
        app_label, model_name = label.split(".")
        content_type = ContentType.objects.get_by_natural_key(app_label, model_name)
        wanted.append((content_type.pk, f"{action}_{model_name}"))
    found = {
        (permission.content_type_id, permission.codename): permission
        for permission in Permission.objects.filter(
            content_type_id__in={content_type_id for content_type_id, _ in wanted}
        )
    }
    return [found[key] for key in wanted]


class Story:
    """The demo's history, one revision per method call in `tell()`."""

    def __init__(self, users: dict[str, Any]) -> None:
        self.alice = users["alice"]
        self.bob = users["bob"]

    def tell(self) -> None:
        self.set_up_organizations()
        self.book_invoices()
        self.update_exchange_rate()
        self.bob_types_a_wrong_amount()
        self.alice_rolls_back_the_typo()
        self.bob_bulk_tags_memos()
        self.alice_reverts_the_bulk_update()
        self.close_petty_cash()
        self.build_the_fleet()
        self.rename_the_volvo()
        self.switch_the_volvo_to_diesel()
        self.record_inspection()
        self.scrap_the_trabant()

    # The ledger ---------------------------------------------------------------------------

    def set_up_organizations(self) -> None:
        with Context(actor=self.alice, revision_description="Set up Acme Corp and its books"):
            acme = Organization.objects.create(slug="acme", name="Acme Corp")
            Membership.objects.create(organization=acme, user=self.alice, role="owner")
            Membership.objects.create(organization=acme, user=self.bob, role="member")
            Account.objects.create(organization=acme, name="Operating", currency="EUR")
            Account.objects.create(organization=acme, name="US sales", currency="USD")
            Account.objects.create(organization=acme, name="Petty cash", currency="EUR")
        with Context(actor=self.bob, revision_description="Set up Globex"):
            globex = Organization.objects.create(slug="globex", name="Globex")
            Membership.objects.create(organization=globex, user=self.bob, role="owner")
            Account.objects.create(organization=globex, name="Main", currency="EUR")

    def book_invoices(self) -> None:
        """A collaborative revision: alice books, the system corrects `local_amount`."""
        with Context(actor=self.alice, revision_description="Book the March invoices"):
            us_sales = Account.objects.get(name="US sales")
            operating = Account.objects.get(name="Operating")
            petty_cash = Account.objects.get(name="Petty cash")
            for account, memo, amount, rate, counterparty in (
                (us_sales, "Invoice 2025-031, Initech", "1200.00", "0.920000", None),
                (us_sales, "Invoice 2025-032, Umbrella", "480.50", "0.920000", None),
                (operating, "Office chairs", "350.00", "1", petty_cash),
            ):
                booking = Transaction(
                    account=account,
                    memo=memo,
                    amount=Decimal(amount),
                    exchange_rate=Decimal(rate),
                    counterparty=counterparty,
                )
                booking.correct_local_amount()
                booking.save()

    def update_exchange_rate(self) -> None:
        """The organization itself is the actor (as with X-Perform-As-Organization)."""
        acme = Organization.objects.get(slug="acme")
        revision = get_revision_model().objects.create(
            description="Month-end exchange rate: USD 0.93",
            # What the API records when a user acts as an organization: the person behind it.
            metadata={"user": {"type": "auth.user", "id": str(self.alice.pk)}},
        )
        with Context.via_revision(revision), Context.via_actor(acme):
            for booking in Transaction.objects.filter(account__currency="USD"):
                booking.exchange_rate = Decimal("0.93")
                booking.correct_local_amount()
                booking.save()

    def bob_types_a_wrong_amount(self) -> None:
        with Context(actor=self.bob, revision_description="Chairs were more expensive"):
            chairs = Transaction.objects.get(memo="Office chairs")
            chairs.amount = Decimal("3500.00")
            chairs.correct_local_amount()
            chairs.save()

    def alice_rolls_back_the_typo(self) -> None:
        chairs = Transaction.objects.get(memo="Office chairs")
        typo = history_of(chairs).first()
        before_typo = history_of(chairs).filter(pk__lt=typo.pk).first()
        with Context(actor=self.alice, revision_description="Roll back: the chairs cost 350"):
            rollback(Transaction, chairs.pk, delta=before_typo)

    def bob_bulk_tags_memos(self) -> None:
        """A bulk path: one UPDATE statement, recorded as one delta per row."""
        with Context(actor=self.bob, revision_description="Tag Acme's March bookings"):
            Transaction.objects.filter(account__organization__slug="acme").update(memo="March")

    def alice_reverts_the_bulk_update(self) -> None:
        tagged = history_of(Transaction.objects.filter(memo="March").first()).first()
        with Context(actor=self.alice, revision_description="Revert: the memos were needed"):
            revert(tagged.revision)

    def close_petty_cash(self) -> None:
        """`SET_NULL` from revy: the chairs' counterparty is cleared and recorded."""
        with Context(
            actor=self.alice,
            revision_description="Close the petty cash account",
            deletion_description="Counterparty account closed.",
        ):
            Account.objects.get(name="Petty cash").delete()

    # The garage: aggregates, an organization actor, a custom event, a cascade --------------

    def build_the_fleet(self) -> None:
        with Context(actor=self.alice, revision_description="Add the fleet"):
            for manufacturer, model, cylinders, volume in (
                ("Volvo", "240", 4, 580),
                ("Trabant", "601", 2, 297),
            ):
                car = Car.objects.create(manufacturer=manufacturer, model=model)
                engine = Engine.objects.create(car=car, num_cylinders=cylinders)
                for position in range(1, cylinders + 1):
                    Cylinder.objects.create(engine=engine, position=position, volume_cc=volume)

    def rename_the_volvo(self) -> None:
        with Context(actor=self.bob, revision_description="It is a GL"):
            volvo = Car.objects.get(manufacturer="Volvo")
            volvo.model = "240 GL"
            volvo.save()

    def switch_the_volvo_to_diesel(self) -> None:
        acme = Organization.objects.get(slug="acme")
        with Context(actor=acme, revision_description="Fleet policy: diesel engines"):
            engine = Engine.objects.get(car__manufacturer="Volvo")
            engine.fuel = "diesel"
            engine.save()
            for cylinder in engine.cylinders.all():
                cylinder.volume_cc = 600
                cylinder.save()

    def record_inspection(self) -> None:
        with Context(actor=None, revision_description="Inspection report imported"):
            record_event(
                Car.objects.get(manufacturer="Volvo"),
                "garage.car.inspected",
                {"result": "passed", "mileage_km": 182_000, "station": "Lyon Sud"},
            )

    def scrap_the_trabant(self) -> None:
        """One delete, and revy's CASCADE records the engine and cylinders going too."""
        with Context(
            actor=self.alice,
            revision_description="Scrap the Trabant",
            object_delta_description="Sold for scrap.",
            deletion_description="Removed with its car.",
        ):
            Car.objects.get(manufacturer="Trabant").delete()
