"""Shared fixtures and helpers for revy's tests."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext

from revy.contrib.django import registry


@pytest.fixture(autouse=True)
def _warm_content_types(db):
    """Content types are cached after first use; load them so query counts are stable.

    The cache is cleared first: content types created on demand (automatic many-to-many
    through models) inside an earlier test's rolled-back transaction no longer exist.
    """
    from django.apps import apps

    ContentType.objects.clear_cache()
    registry.clear()  # revy keeps content type ids as long as Django's cache does
    # Django creates no content type for automatic many-to-many through models until used.
    ContentType.objects.get_for_models(*apps.get_models(include_auto_created=True))
    for content_type in ContentType.objects.all():
        ContentType.objects._add_to_cache(ContentType.objects.db, content_type)


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("alice", password="s3cret-Pass")


@pytest.fixture
def other_user(db):
    return get_user_model().objects.create_user("bob", password="s3cret-Pass")


class count_queries(CaptureQueriesContext):
    """Capture the SQL statements run in a block: `with count_queries() as q: ...; len(q)`."""

    def __init__(self, using: str = "default"):
        from django.db import connections

        super().__init__(connections[using] if using != "default" else connection)

    @property
    def statements(self) -> list[str]:
        return [query["sql"] for query in self.captured_queries]


def one_statement() -> bool:
    """True when a tracked single-row write carries its history in Django's own statement
    (PostgreSQL, `REVY_ONE_STATEMENT`)."""
    from django.conf import settings

    return connection.vendor == "postgresql" and settings.REVY_ONE_STATEMENT


def added(*statements: int) -> int:
    """The statements a tracked single-row write adds to Django's: their sum, or none when
    the write's own statement carries its history (`one_statement()`)."""
    return 0 if one_statement() else sum(statements)


def feed_caught_up(timeout: float = 10.0) -> None:
    """Wait until the changes feed can deliver every recorded delta. On PostgreSQL it holds
    deltas back while an older transaction of the database runs, and a test's committed
    writes may briefly sit behind autovacuum's, or behind a transaction of another test
    process that ended while the feed was reading (it then counts, to be safe)."""
    import time

    from revy.contrib.django.feed import committed
    from tests.history_models import ObjectDelta

    deadline = time.monotonic() + timeout
    while committed(ObjectDelta.objects.all()).count() < ObjectDelta.objects.count():
        if time.monotonic() > deadline:
            return  # the test's own assertion says what is missing
        time.sleep(0.02)


def report_line(config, text: str) -> None:
    """Print a line in pytest's terminal summary (fuzzers report their figures with it)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(text)
