"""History survives field renames: values recorded before a RenameField read under the new
name, and unapplying the migration renames them back."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from revy import Context
from revy.contrib.django.history import diff, history_of, rollback, snapshot
from revy.contrib.django.renames import rename_field_in_history
from tests.history_models import AttributeDelta
from tests.renameapp.models import Gadget

pytestmark = pytest.mark.django_db(transaction=True)


def field_names(gadget) -> set[str]:
    return set(
        AttributeDelta.objects.filter(parent__in=history_of(gadget)).values_list(
            "field_name", flat=True
        )
    )


def test_migrating_a_rename_backwards_and_forwards_renames_the_history_too(user):
    with Context(actor=user):
        gadget = Gadget.objects.create(title="first", maker=user)
    created = history_of(gadget).get()
    try:
        call_command("migrate", "renameapp", "0001", verbosity=0)
        assert field_names(gadget) == {"id", "label", "owner_id"}
        assert set(history_of(Gadget, gadget.pk).get().data) == {"id", "label", "owner_id"}
    finally:
        call_command("migrate", "renameapp", verbosity=0)
    assert field_names(gadget) == {"id", "title", "maker_id"}
    with Context():
        gadget.title = "second"
        gadget.save()
    assert snapshot(Gadget, gadget.pk, delta=created).title == "first"
    assert diff(Gadget, gadget.pk, since=created, until=None) == {
        "title": {"old": "first", "new": "second"}
    }
    rollback(Gadget, gadget.pk, delta=created)
    gadget.refresh_from_db()
    assert (gadget.title, gadget.maker_id) == ("first", user.pk)


def test_rename_field_in_history_by_hand_is_idempotent(user):
    with Context():
        gadget = Gadget.objects.create(title="t", maker=user)
    AttributeDelta.objects.filter(field_name="title").update(field_name="name")
    assert rename_field_in_history(Gadget, "name", "title") == 1
    assert rename_field_in_history("renameapp.Gadget", "name", "title") == 0
    assert field_names(gadget) == {"id", "title", "maker_id"}
