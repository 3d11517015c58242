"""Which models and fields are tracked, computed once per model from the settings.

`config_for(model)` is on the hot path of every load and save: it is one dict lookup after the
first call for a model. The cache is cleared when a `REVY_*` setting changes.
"""

from __future__ import annotations

import decimal
import json
import logging
import uuid
from operator import itemgetter
from types import SimpleNamespace
from typing import Any, cast

from django.apps import apps as global_apps
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import EmptyResultSet, ValidationError
from django.core.signals import setting_changed
from django.db import connections, models, router
from django.db.models.signals import post_migrate

from revy.contrib.django import settings as revy_settings
from revy.contrib.django._meta import concrete_field, concrete_model, related_model
from revy.contrib.django.encoding import encode

__all__ = [
    "ModelConfig",
    "children_of",
    "clear",
    "config_for",
    "content_id",
    "content_type_id",
    "create_content_types",
    "is_composite",
    "is_tracked",
    "pk_from_content_id",
    "same_json",
    "stored_form",
    "through_models",
    "tracked_models",
]


_configs: dict[type, ModelConfig | None] = {}

logger = logging.getLogger(__name__)


class ModelConfig:
    """Tracking facts about one concrete model.

    `attnames` follows `_meta.concrete_fields`, the order Django loads rows in, so a row's
    values tuple and an instance's state line up index by index. `recorded` lists the indexes
    of fields that reach the history tables; `masked` those stored as a mask.
    """

    __slots__ = (
        "aggregate_fields",
        "all_indexes",
        "attnames",
        "event_prefix",
        "fields",
        "has_aggregates",
        "indexes",
        "json",
        "label",
        "links",
        "masked",
        "model",
        "mutable",
        "normalizers",
        "parent_key_attnames",
        "pk_attname",
        "pk_default",
        "pk_from_default",
        "pk_index",
        "pk_indexes",
        "pk_names",
        "read",
        "recorded",
        "relatives",
        "root_pk",
        "row_readers",
    )

    def __init__(self, model: type[models.Model]) -> None:
        opts = model._meta
        self.model = model
        self.fields = tuple(opts.concrete_fields)
        self.attnames = tuple(field.attname for field in self.fields)
        self.pk_attname = opts.pk.attname
        # A composite primary key (Django 5.2's CompositePrimaryKey) is several columns; its
        # value is the tuple of theirs, and its content id their JSON list.
        components = getattr(opts.pk, "fields", None) or (opts.pk,)
        self.pk_indexes = tuple(self.attnames.index(field.attname) for field in components)
        self.pk_index = self.pk_indexes[0]
        # A primary key Django generates from a Python default (UUIDs) unless one is given.
        self.pk_default = opts.pk.has_default()
        # A multi-table child is saved under its parents' key: Django saves the parents first
        # and then sets each link to the key its parent was saved under (`_save_parents`).
        # The attnames of those keys, from the nearest parent to the root.
        parent_keys: list[str] = []
        root = opts
        while (link := root.pk).remote_field is not None and link.remote_field.parent_link:
            root = link.remote_field.model._meta
            parent_keys.append(root.pk.attname)
        self.parent_key_attnames = tuple(parent_keys)
        # An instance without a key is saved under what the root's key field's
        # `get_pk_value_on_save` gives (`Model._save_table`); without a callable or database
        # default that is a constant (a CharField's ""), and Django UPDATEs the row having it.
        self.root_pk = root.pk
        self.pk_from_default = not (
            len(components) > 1
            or (root.pk.has_default() and callable(root.pk.default))
            or root.pk.has_db_default()
        )
        self.pk_names = frozenset({"pk", opts.pk.name, opts.pk.attname})
        self.all_indexes = frozenset(range(len(self.attnames)))
        # Field names and attnames (author and author_id) to positions in `attnames`.
        self.indexes = {attname: index for index, attname in enumerate(self.attnames)}
        self.indexes.update({field.name: index for index, field in enumerate(self.fields)})
        self.label = opts.label
        self.event_prefix = opts.label_lower
        excluded = revy_settings.excluded_fields().get(model, frozenset())
        masked = set(revy_settings.masked_fields().get(model, frozenset()))
        if _is_user_model(model) and "password" in self.attnames:
            masked.add("password")  # password hashes never reach the history tables
        self.recorded = tuple(
            index
            for index, attname in enumerate(self.attnames)
            if attname not in excluded or index in self.pk_indexes
        )
        self.masked = frozenset(
            index for index, attname in enumerate(self.attnames) if attname in masked
        )
        # Fields whose values can be changed in place (`obj.data["key"] = 1`): what revy keeps
        # of them must be a copy, or the change would go unnoticed.
        self.mutable = tuple(
            index
            for index, field in enumerate(self.fields)
            if field.get_internal_type() in _MUTABLE_TYPES
        )
        # JSON values Python finds equal although the database stores different ones: 0 and
        # false, 1 and true (`same`).
        self.json = frozenset(
            index
            for index, field in enumerate(self.fields)
            if field.get_internal_type() == "JSONField"
        )
        self.normalizers = tuple(
            (index, normalizer)
            for index in self.recorded
            if (normalizer := _normalizer(self.fields[index])) is not None
        )
        # A many-to-many through model: the foreign keys to the relation's two ends, so that
        # a link's changes show in the history of both rows it links.
        self.links = tuple(
            (self.index_of(field.attname), related_model(field)) for field in _link_fields(model)
        )
        # Multi-table inheritance: the models whose rows share this model's primary keys
        # (every ancestor, every descendant). A change of one is a change of the others.
        self.relatives = frozenset({*opts.get_parent_list(), *_descendants(model)} - {model})
        self.aggregate_fields = revy_settings.aggregates().get(model, ())
        self.has_aggregates = bool(self.aggregate_fields) or hasattr(model, "get_event_aggregates")
        # `read_rows`' compiled SELECT of one row, by database alias (None: the ORM's path).
        self.row_readers: dict[str, _RowReader | None] = {}
        getter = itemgetter(*self.attnames)
        if len(self.attnames) == 1:
            self.read = lambda values: (getter(values),)
        else:
            self.read = getter

    def content_type_id(self, using: str = "default") -> int:
        return content_type_id(self.model, using)

    def index_of(self, name: str) -> int:
        """Return the position of a field, given its name or attname."""
        return self.indexes[name]

    def pk_of(self, values: tuple) -> Any:
        """Return the primary key held in a row's values (a tuple for a composite key)."""
        if len(self.pk_indexes) == 1:
            return values[self.pk_index]
        return tuple(values[index] for index in self.pk_indexes)

    def key(self, pk: Any) -> Any:
        """Return `pk` in a form usable as a dict key: itself, or its content id for the rare
        custom key types that are not hashable."""
        try:
            hash(pk)
        except TypeError:
            return self.content_id(pk)
        return pk

    def content_id(self, pk: Any) -> str:
        """Return how history stores the row's primary key: its text, or for a composite key
        the JSON list of its parts."""
        return content_id(self.model, pk)

    def knows(self, names) -> bool:
        """True when every name is a concrete field's name or attname (Django validates the
        rest, so unknown names are left to it and to its own error)."""
        indexes = self.indexes
        return all(name in indexes for name in names)

    def indexes_of(self, names) -> frozenset[int]:
        """Return the positions a save with `update_fields=names` writes (None: all)."""
        if names is None:
            return self.all_indexes
        return frozenset(self.indexes[name] for name in names) | frozenset(self.pk_indexes)

    def read_rows(self, using: str, pks) -> dict[Any, tuple]:
        """SELECT the full rows of `pks` as tuples keyed by pk, without building instances.

        In chunks, so that any number of keys fits every database's parameter limit. One key
        (a save or a deletion whose instance's state is not known: the hot path) runs a
        statement compiled once per database, instead of a queryset built per call.
        """
        pks = list(pks)
        if len(pks) == 1:
            readers = self.row_readers
            if using not in readers:
                readers[using] = _RowReader.compile(self, using, pks[0])
            reader = readers[using]
            if reader is not None:
                row = reader.read(pks[0])
                return {} if row is None else {self.key(self.pk_of(row)): row}
        manager = self.model._base_manager.using(using)
        rows: dict[Any, tuple] = {}
        for start in range(0, len(pks), 1000):
            chunk = manager.filter(pk__in=pks[start : start + 1000])
            for row in chunk.values_list(*self.attnames):
                rows[self.key(self.pk_of(row))] = tuple(row)
        return rows

    def frozen(self, values: tuple) -> tuple:
        """Return `values` with the mutable values (dicts, lists) copied, to keep as a base or
        checkpoint. Hot path: returns `values` itself for models without such fields."""
        if not self.mutable:
            return values
        copied = list(values)
        for index in self.mutable:
            value = copied[index]
            if type(value) in _CONTAINERS:
                copied[index] = _copy(value)
        return tuple(copied)

    def normalize(self, values: tuple) -> tuple:
        """Return `values` in the form the database stores and returns them.

        `1` for a `DecimalField(decimal_places=4)` is stored as `Decimal("1.0000")`, `123` for
        a CharField as `"123"`, a model instance assigned to a foreign key's attname as its
        key. Recording the stored form means history and diffs never report a change that
        the database never saw. Values that cannot be converted are left as they are:
        Django decides what to do with them when it writes.
        """
        normalized = None
        for index, normalizer in self.normalizers:
            value = values[index]
            if value is None or value is DEFERRED or hasattr(value, "resolve_expression"):
                continue
            try:
                converted = normalizer(value)
            except Exception:  # Django reports bad values itself
                continue
            if converted is not value:
                if normalized is None:
                    normalized = list(values)
                normalized[index] = converted
        return values if normalized is None else tuple(normalized)

    def normal(self, index: int, value: Any) -> Any:
        """Return one field's value in its stored form (see `normalize`)."""
        for position, normalizer in self.normalizers:
            if position == index:
                if value is None or value is DEFERRED or hasattr(value, "resolve_expression"):
                    return value
                try:
                    return normalizer(value)
                except Exception:  # Django reports bad values itself
                    return value
        return value

    def same(self, index: int, a: Any, b: Any) -> bool:
        """True when two values of one field are the same stored value (`0` and `False` are
        not, in a JSONField)."""
        return a == b and (index not in self.json or same_json(a, b))

    def same_row(self, a: tuple | None, b: tuple | None) -> bool:
        """`same` for every field of two rows."""
        if a is None or b is None or a != b:
            return a == b
        return not self.json or all(same_json(a[i], b[i]) for i in self.json)

    def values_of(self, instance: models.Model) -> tuple:
        """Return the instance's current field values, `DEFERRED` for fields not loaded."""
        # Hot path: one C-level itemgetter call when every field is loaded.
        try:
            return self.read(instance.__dict__)
        except KeyError:
            data = instance.__dict__
            return tuple(data.get(attname, models.DEFERRED) for attname in self.attnames)


_MUTABLE_TYPES = frozenset({"JSONField", "ArrayField", "HStoreField"})
_CONTAINERS = (dict, list)


def same_json(a: Any, b: Any) -> bool:
    """Equality of JSON values: as Python's, except that booleans equal booleans only."""
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if type(a) is dict:
        return (
            type(b) is dict
            and a.keys() == b.keys()
            and all(same_json(value, b[key]) for key, value in a.items())
        )
    if type(a) in (list, tuple):
        return (
            type(b) in (list, tuple)
            and len(a) == len(b)
            and all(same_json(x, y) for x, y in zip(a, b, strict=True))
        )
    return a == b


def _copy(value: Any) -> Any:
    # A deep copy of JSON-like data, several times faster than copy.deepcopy().
    kind = type(value)
    if kind is dict:
        return {key: _copy(item) for key, item in value.items()}
    if kind is list:
        return [_copy(item) for item in value]
    return value


DEFERRED = models.DEFERRED
# Values of these types come back from the database as they were given.
_AS_GIVEN = frozenset({"JSONField", "FileField", "ImageField", "BinaryField"})


def _normalizer(field: models.Field):
    """Return a function giving a value of `field` in its stored form, or None if none is
    needed."""
    if field.get_internal_type() in _AS_GIVEN:
        return None
    to_python = field.to_python
    if field.is_relation:

        def related(value: Any) -> Any:
            if isinstance(value, models.Model):  # an instance assigned to `author_id`
                value = value.pk
            return to_python(value)

        return related
    if isinstance(field, models.DecimalField) and field.decimal_places is not None:
        exponent = decimal.Decimal(1).scaleb(-field.decimal_places)

        def fixed_point(value: Any) -> Any:
            value = to_python(value)
            return value.quantize(exponent) if value.is_finite() else value

        return fixed_point
    return to_python


def _history_model_labels() -> frozenset[str]:
    return frozenset(
        revy_settings.get(name)
        for name in ("REVY_REVISION_MODEL", "REVY_OBJECT_DELTA_MODEL", "REVY_ATTRIBUTE_DELTA_MODEL")
    )


def _descendants(model: type[models.Model]) -> list[type[models.Model]]:
    """Concrete models inheriting from `model` through multi-table inheritance."""
    return [
        other
        for other in global_apps.get_models()
        if not other._meta.proxy and model in other._meta.get_parent_list()
    ]


def children_of(model: type[models.Model]) -> list[type[models.Model]]:
    """Concrete models that inherit directly from `model` (multi-table inheritance)."""
    return [other for other in _descendants(model) if model in other._meta.parents]


def _link_fields(model: type[models.Model]) -> list[models.Field]:
    """The foreign keys of a many-to-many through model that point at the relation's ends."""
    fields: dict[str, models.Field] = {}
    for other in global_apps.get_models():
        for m2m in other._meta.local_many_to_many:
            if m2m.remote_field.through is model:
                for name in (m2m.m2m_field_name(), m2m.m2m_reverse_field_name()):
                    field = concrete_field(model, name)
                    fields[field.attname] = field
    return list(fields.values())


def through_models(model: type[models.Model]) -> list[type[models.Model]]:
    """The through models of every many-to-many relation of `model`, in either direction."""
    opts = concrete_model(model)._meta
    found = [field.remote_field.through for field in opts.many_to_many]
    found += [rel.through for rel in opts.related_objects if isinstance(rel, models.ManyToManyRel)]
    # A many-to-many relation has a through model once the apps are ready.
    return cast("list[type[models.Model]]", list(dict.fromkeys(found)))


def is_composite(model: type[models.Model]) -> bool:
    """True for a model whose primary key is a `CompositePrimaryKey`."""
    return len(getattr(model._meta.pk, "fields", None) or ()) > 1


def content_id(model: type[models.Model], pk: Any) -> str:
    """Return the `content_id` history stores for the row of `model` with this primary key:
    its text, as the database stores it."""
    if type(pk) in _PLAIN_KEYS:  # hot path
        return str(pk)
    if is_composite(model):
        return encode([value for value in pk])
    # A custom key type: the value the database stores, whatever the type's __str__ does.
    return str(stored_form(model._meta.pk, pk))


def stored_form(field: models.Field, value: Any) -> Any:
    """The form of a custom type's value the database stores, as JSON can hold it.

    A JSONField's value as its own encoder writes it; otherwise what the field prepares for the
    database (`get_prep_value`, which its `to_python` reads back); failing that, Django's
    serialization of it (`value_to_string`); failing both (a type Django itself could not save
    again), its repr, so that a write revy cannot describe exactly still succeeds."""
    if isinstance(field, models.JSONField):
        # Stored as the field's own encoder writes it (a custom `encoder=` knows its types).
        try:
            return json.loads(json.dumps(value, cls=field.encoder))
        except (TypeError, ValueError):
            pass
    try:
        prepared = field.get_prep_value(value)
        encode(prepared)
        return prepared
    except (TypeError, ValueError):
        pass
    try:
        # value_to_string reads only the field's attribute of the object it is given: a
        # stand-in holding the value will do (django-stubs asks for a Model).
        stand_in = SimpleNamespace(**{field.attname: value})
        return field.value_to_string(stand_in)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        logger.warning(
            "revy records %r of %s by its repr: the field can neither prepare nor serialize it.",
            value,
            field,
        )
        return repr(value)


_PLAIN_KEYS = frozenset({int, str, uuid.UUID})


def pk_from_content_id(model: type[models.Model], content_id: str) -> Any:
    """Return the primary key a stored `content_id` stands for (see `content_id`)."""
    if is_composite(model):
        return tuple(json.loads(content_id))
    return content_id


def _is_user_model(model: type) -> bool:
    try:
        from django.contrib.auth.base_user import AbstractBaseUser
    except ImportError:  # pragma: no cover - auth is part of Django
        return False
    return issubclass(model, AbstractBaseUser)


def is_tracked(model: type[models.Model]) -> bool:
    """Return True when changes to `model` are recorded."""
    return config_for(model) is not None


def config_for(model: type[models.Model]) -> ModelConfig | None:
    """Return the tracking config of `model` (proxies share their concrete model's)."""
    try:
        return _configs[model]
    except KeyError:
        pass
    concrete = concrete_model(model)
    if concrete not in _configs:
        _configs[concrete] = ModelConfig(concrete) if _included(concrete) else None
    config = _configs[model] = _configs[concrete]
    return config


def _included(model: type[models.Model]) -> bool:
    opts = model._meta
    if opts.abstract or opts.swapped:
        return False
    if opts.app_label in revy_settings.ALWAYS_EXCLUDED_APPS:
        return False
    if opts.label_lower in revy_settings.ALWAYS_EXCLUDED_MODELS:
        return False
    if model in revy_settings.excluded_models():
        return False
    if opts.label in _history_model_labels():
        return False  # custom history models (REVY_*_MODEL) never record themselves
    everything, app_labels, listed = revy_settings.included()
    if everything or opts.app_label in app_labels or model in listed:
        return True
    if opts.auto_created:
        # An automatic M2M through model follows the model that declares the field.
        # The model that declares the field (django-stubs types auto_created as a bool).
        source = cast("type[models.Model]", opts.auto_created)
        return source in listed or source._meta.app_label in app_labels
    return False


_content_type_ids: dict[tuple[str, type], int] = {}


class _RowReader:
    """The compiled SELECT of one row by primary key, and the converters of its columns."""

    __slots__ = ("connection", "converters", "prepare", "sql")

    def __init__(self, connection, sql: str, converters: dict, prepare) -> None:
        self.connection, self.sql, self.converters, self.prepare = (
            connection,
            sql,
            converters,
            prepare,
        )

    @classmethod
    def compile(cls, config: ModelConfig, using: str, pk: Any) -> _RowReader | None:
        """Compile the ORM's query for `pk`; None when its only parameter is not the key as
        the key field prepares it (then every read goes through the ORM)."""
        if len(config.pk_indexes) != 1:
            return None
        connection = connections[using]
        pk_field = config.model._meta.pk
        queryset = (
            config.model._base_manager.using(using)
            .filter(pk=pk)
            .order_by()
            .values_list(*config.attnames)
        )
        compiler = queryset.query.get_compiler(using)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:
            return None

        def prepare(value: Any) -> Any:
            return pk_field.get_db_prep_value(value, connection, prepared=False)

        try:
            if len(params) != 1 or params[0] != prepare(pk):
                return None
        except (TypeError, ValueError, ValidationError):
            return None
        converters = compiler.get_converters([column for column, _, _ in compiler.select])
        return cls(connection, sql, converters, prepare)

    def read(self, pk: Any) -> tuple | None:
        with self.connection.cursor() as cursor:
            cursor.execute(self.sql, [self.prepare(pk)])
            row = cursor.fetchone()
        if row is None or not self.converters:
            return None if row is None else tuple(row)
        values = list(row)
        connection = self.connection
        for position, (converters, expression) in self.converters.items():
            value = values[position]
            for converter in converters:
                value = converter(value, expression, connection)
            values[position] = value
        return tuple(values)


def content_type_id(model: type[models.Model], using: str = "default") -> int:
    """Return the id of the (concrete) model's content type in the database `using`.

    Hot path: Django's `get_for_model()` consults the database router on every call. The ids
    are kept per database as long as Django keeps its own content type cache: until the next
    migration or flush (post_migrate), or a change to a REVY_* setting.

    The content types of every tracked model exist before any tracked write (see
    `create_content_types`); one that is missing anyway is created, but an id created inside
    a transaction is not kept, since that transaction may still roll back.
    """
    key = (using, model)
    try:
        return _content_type_ids[key]
    except KeyError:
        pass
    opts = concrete_model(model)._meta
    manager = ContentType.objects.db_manager(using)
    try:
        content_type = manager.get_by_natural_key(opts.app_label, str(opts.model_name))
    except ContentType.DoesNotExist:
        content_type, _ = manager.get_or_create(app_label=opts.app_label, model=opts.model_name)
        if connections[using].in_atomic_block:
            manager.clear_cache()
            return content_type.pk
    _content_type_ids[key] = content_type.pk
    return content_type.pk


def clear() -> None:
    _configs.clear()
    _content_type_ids.clear()


def _on_setting_changed(setting: str, **kwargs: Any) -> None:
    # Model configs are built from REVY_* settings (tests change them with override_settings).
    if setting.startswith("REVY_"):
        clear()


setting_changed.connect(_on_setting_changed, dispatch_uid="revy.registry")


def create_content_types(app_config, using: str = "default", apps=global_apps, **kwargs) -> None:
    """Create the content types of an app's tracked models, automatic M2M through models
    included (Django creates those only when first asked for), after `migrate` and `flush`.

    So that recording never saves a ContentType inside a user's transaction.
    """
    # `flush` (run between transactional tests) and migrations may re-create content types
    # with new ids: forget the ids kept so far, as ContentType's own cache does.
    clear()
    if not router.allow_migrate_model(using, ContentType):
        return
    try:
        installed = global_apps.get_app_config(app_config.label)
    except LookupError:
        return
    tracked = [
        model
        for model in installed.get_models(include_auto_created=True)
        if is_tracked(model) and router.allow_migrate_model(using, model)
    ]
    if tracked:
        ContentType.objects.clear_cache()
        ContentType.objects.db_manager(using).get_for_models(*tracked)


post_migrate.connect(create_content_types, dispatch_uid="revy.registry")


def tracked_models() -> list[type[models.Model]]:
    """Return every installed concrete model that is tracked."""
    return [
        model for model in global_apps.get_models(include_auto_created=True) if is_tracked(model)
    ]
