"""Typed access to Django's model metadata, where django-stubs is looser than revy's models.

django-stubs types `Options.concrete_model` and `Field.related_model` as optional (None for
an abstract model, or a field that relates to nothing); revy only ever asks about concrete
models, whose rows it records, and about relations, whose target apps have resolved. These
helpers say so once, instead of at every call site.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from django.db.models import Field, Model

__all__ = ["column", "concrete_field", "concrete_model", "related_model"]


def concrete_model(model: type[Model]) -> type[Model]:
    """Return the concrete model of `model`: itself, or a proxy's concrete model."""
    # None only for an abstract model, which has no rows: revy never records or reads one.
    return cast("type[Model]", model._meta.concrete_model)


def related_model(field: Field[Any, Any]) -> type[Model]:
    """Return the concrete model a relation (a foreign key, one-to-one, many-to-many) targets."""
    # A class once the apps are ready (a lazy 'app.Model' string only before); None only
    # for a field that is not a relation, which the callers never pass.
    return concrete_model(cast("type[Model]", field.related_model))


def concrete_field(model: type[Model], name: str) -> Field[Any, Any]:
    """Return the field `name` (or attname) of `model` that has a column."""
    # get_field() also finds reverse relations (ForeignObjectRel); the callers name
    # columns of revy's own tables or of a model's concrete fields.
    return cast("Field[Any, Any]", model._meta.get_field(name))


def column(model: type[Model], name: str) -> str:
    """Return the column of the concrete field `name` (or attname) of `model`."""
    # None only for fields without a column (many-to-many), which the callers never name.
    return cast(str, concrete_field(model, name).column)
