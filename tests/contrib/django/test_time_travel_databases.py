"""Time travel and recovery in another database: `as_of`, `deleted` and cascading rollbacks
read and write the rows' own database (`using`, or the router's write database)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from revy import Context
from revy.contrib.django.history import as_of, deleted, rollback
from revy.contrib.django.utils import get_object_delta_model
from tests.contrib.django.helpers import moment
from tests.testapp.models import Author, Car, Cylinder, Engine

pytestmark = pytest.mark.django_db(databases=["default", "other"], transaction=True)


class CarsElsewhere:
    """Writes and reads cars, engines and cylinders in the "other" database."""

    def db_for_write(self, model, **hints):
        return "other" if model in (Car, Engine, Cylinder) else None

    db_for_read = db_for_write


def test_as_of_reads_the_history_of_the_given_database():
    with Context():
        Author.objects.using("default").create(pk=500, name="default row")
    with Context():
        Author(pk=500, name="other row").save(using="other")
    at = moment()
    with Context():
        Author.objects.using("other").filter(pk=500).update(name="renamed")

    assert [a.name for a in as_of(Author, at, using="other")] == ["other row"]
    assert [a.name for a in as_of(Author, at)] == ["default row"]
    # A queryset's database is kept.
    assert [a.name for a in as_of(Author.objects.using("other"), at)] == ["other row"]


def test_deleted_and_a_cascading_rollback_follow_the_router():
    with override_settings(DATABASE_ROUTERS=[CarsElsewhere()]):
        with Context():
            car = Car.objects.create(manufacturer="Saab")
            engine = Engine.objects.create(car=car)
            Cylinder.objects.create(engine=engine, volume=400)
        car_pk = car.pk
        with Context():
            car.delete()

        assert [d.snapshot.manufacturer for d in deleted(Car)] == ["Saab"]
        assert list(deleted(Car, using="default")) == []

        rollback(Car, car_pk, delta=deleted(Car).get(), cascade=True)

        assert Cylinder.objects.get().engine.car_id == car_pk
        assert not deleted(Car).exists() and not deleted(Cylinder).exists()
    assert (
        not get_object_delta_model()
        .objects.using("default")
        .filter(content_type__model__in=["car", "engine", "cylinder"])
        .exists()
    )
