"""Small factories and readers for the history tables, shared by the tests."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import models

from revy.contrib.django.registry import content_id
from revy.contrib.django.utils import (
    get_attribute_delta_model,
    get_object_delta_model,
    get_revision_model,
)
from tests.testapp.models import Author, Book, Ledger, Note, Review

_sequence = itertools.count(1)


# Rows ---------------------------------------------------------------------------------------


def make_author(**fields: Any) -> Author:
    fields.setdefault("name", f"Author {next(_sequence)}")
    return Author.objects.create(**fields)


def make_book(author: Author | None = None, **fields: Any) -> Book:
    fields.setdefault("title", f"Book {next(_sequence)}")
    return Book.objects.create(author=author or make_author(), **fields)


def make_review(book: Book | None = None, **fields: Any) -> Review:
    fields.setdefault("text", f"Review {next(_sequence)}")
    return Review.objects.create(book=book or make_book(), **fields)


def make_note(**fields: Any) -> Note:
    fields.setdefault("text", f"Note {next(_sequence)}")
    return Note.objects.create(**fields)


def make_ledger(**fields: Any) -> Ledger:
    fields.setdefault("amount", Decimal("10.00"))
    return Ledger.objects.create(**fields)


# Users ---------------------------------------------------------------------------------------


def grant(user: Any, *codenames: str) -> Any:
    """Give `user` permissions like `testapp.view_author`, and forget the cached ones
    (Django's, and what revy's access policy computed from them)."""
    for codename in codenames:
        app_label, name = codename.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=name)
        )
    for cache in ("_perm_cache", "_user_perm_cache", "_group_perm_cache", "_revy_access_cache"):
        user.__dict__.pop(cache, None)
    return user


# Reading history ----------------------------------------------------------------------------


def revisions() -> list[models.Model]:
    """Every revision, oldest first."""
    return list(get_revision_model().objects.order_by("id"))


def object_deltas(obj_or_model: Any = None, pk: Any = None) -> list[models.Model]:
    """Object deltas (of one row, of one model, or all), oldest first."""
    queryset = get_object_delta_model().objects.order_by("id")
    if obj_or_model is None:
        return list(queryset)
    if isinstance(obj_or_model, models.Model):
        model, pk = type(obj_or_model), obj_or_model.pk
    else:
        model = obj_or_model
    queryset = queryset.filter(content_type=ContentType.objects.get_for_model(model))
    if pk is not None:
        queryset = queryset.filter(content_id=content_id(model, pk))
    return list(queryset)


def attribute_deltas(delta: models.Model | None = None) -> list[models.Model]:
    """Attribute deltas (of one object delta, or all), oldest first."""
    queryset = get_attribute_delta_model().objects.order_by("id")
    if delta is not None:
        queryset = queryset.filter(parent=delta)
    return list(queryset)


def actor_ref(actor: models.Model | None) -> tuple[int | None, str | None]:
    """The (actor_type_id, actor_id) pair revy stores for `actor`."""
    if actor is None:
        return (None, None)
    return (ContentType.objects.get_for_model(actor).pk, str(actor.pk))


def actor_of(delta: models.Model) -> tuple[int | None, str | None]:
    return (delta.actor_type_id, delta.actor_id)


def changes(delta: models.Model) -> dict[str, list[tuple]]:
    """Map each field of an object delta to its attribute deltas as
    `(action, old, new, actor_ref, description)` tuples, oldest first."""
    result: dict[str, list[tuple]] = {}
    for attribute in attribute_deltas(delta):
        result.setdefault(attribute.field_name, []).append(
            (
                attribute.action,
                attribute.old_value,
                attribute.new_value,
                actor_of(attribute),
                attribute.description,
            )
        )
    return result


def values(delta: models.Model) -> dict[str, tuple]:
    """Map each field of an object delta to `(old, new)` of its single attribute delta."""
    result = {}
    for field, entries in changes(delta).items():
        assert len(entries) == 1, f"{field} has {len(entries)} attribute deltas"
        result[field] = (entries[0][1], entries[0][2])
    return result


def only(items: list) -> Any:
    assert len(items) == 1, f"expected exactly one item, got {len(items)}: {items!r}"
    return items[0]


def history_counts() -> tuple[int, int, int]:
    """(revisions, object deltas, attribute deltas) currently stored."""
    return (
        get_revision_model().objects.count(),
        get_object_delta_model().objects.count(),
        get_attribute_delta_model().objects.count(),
    )
