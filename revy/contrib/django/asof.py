"""A whole table as it was at a past moment: `as_of(model, at)`.

Every state-bearing object delta stores its row's full state, so the table at `at` is, for
each row, the `data` of its latest state-bearing delta recorded at or before `at`, unless that
delta is a deletion. `as_of()` turns that into a derived table with the model's own columns
(each state key cast to its field's column type) and puts it where the model's table would
be in the FROM clause of an ordinary queryset::

    SELECT ... FROM (SELECT <state keys as columns> FROM <object deltas> WHERE ...) "app_car"
    WHERE "app_car"."manufacturer" = 'Volvo' ORDER BY "app_car"."id"

So the result is a real, lazy QuerySet of the model: `filter()`, `exclude()`, `order_by()`,
slicing, `count()`, `exists()`, `values()`, `aggregate()`, `annotate()`, `in_bulk()` and
`get()` work on the past values, and every evaluation is one SQL query whatever the length
of the history. What it cannot do, by design:

- it is read-only: `update()`, `delete()`, `create()` and the bulk writes raise TypeError
  (an instance it returns is unsaved history, like a snapshot: saving it writes it to the
  table as it is today);
- relations lead to the present: joins (`filter(author__name=...)`, `select_related`,
  `prefetch_related`, related managers of the instances) read the related tables as they are
  now. Only the parents of a multi-table child are read as of `at` too;
- rows that predate tracking and have no baseline (`manage.py revy_baseline`) are absent,
  rows deleted since are present and rows created since are absent;
- fields revy does not record (masked or excluded) and fields added since a state was
  recorded read as their default (a callable default is called once per query);
- values are cast in SQL: SQLite and PostgreSQL only; on PostgreSQL an `ArrayField` or
  another type whose text form is not its JSON form cannot be read.

Lookups on the past columns are not indexed: filtering scans the model's history (one
indexed range of the object delta table), which `benchmarks/` measures.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import django
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import NotSupportedError, models, router
from django.db.models.sql import Query
from django.db.models.sql.datastructures import BaseTable, Join
from django.utils import timezone

from revy.contrib.django._meta import column as column_of
from revy.contrib.django._meta import concrete_model
from revy.contrib.django.snapshots import STATE_ACTIONS
from revy.contrib.django.utils import get_object_delta_model

if TYPE_CHECKING:
    from django.db.models.sql.compiler import _AsSqlType

__all__ = [
    "AsOfQuery",
    "AsOfQuerySet",
    "PastJoin",
    "PastTable",
    "as_of",
    "past_rows_sql",
]


def as_of(
    model: type[models.Model] | models.QuerySet,
    at: datetime.datetime,
    *,
    using: str | None = None,
) -> AsOfQuerySet:
    """Return a lazy, read-only queryset of `model` as its table was at `at`.

    Rows deleted since are included, rows created since are not; each instance holds the
    row's state at `at`. Filter, order, slice and count it like any queryset (see the module
    documentation for what relations and writes do). A naive `at` is in the current time
    zone. `using` names the database of the rows and their history (default: the
    queryset's database if one was chosen, else the one the router writes the model to).

    `model` may be a queryset of the model instead: its filters, ordering and other
    options then apply to the past values (`as_of(Book.objects.filter(owner=user), at)`:
    the books that were the user's at `at`).
    """
    queryset = model if isinstance(model, models.QuerySet) else None
    if queryset is not None:
        model = queryset.model
    if not (isinstance(model, type) and issubclass(model, models.Model)):
        raise TypeError(f"as_of() takes a model class or a queryset, not {model!r}.")
    if not isinstance(at, datetime.datetime):
        raise TypeError(f"as_of() takes a datetime, not {at!r}.")
    if settings.USE_TZ and timezone.is_naive(at):
        at = timezone.make_aware(at)  # the current time zone, as Django's forms and filters
    if queryset is None:
        using = using or router.db_for_write(concrete_model(model))
        return AsOfQuerySet(model, query=AsOfQuery(model, at), using=using)
    if isinstance(queryset, AsOfQuerySet):
        raise TypeError("as_of() takes a queryset of the present, not one of the past.")
    # The database the queryset was given with using(), if any (not the router's choice for
    # reading, which `db` falls back to). Private attributes django-stubs does not declare.
    chosen = queryset._db  # type: ignore[attr-defined]
    using = using or chosen or router.db_for_write(concrete_model(model))
    past: AsOfQuerySet = AsOfQuerySet(model, query=_past_query(queryset.query, at), using=using)
    # The options that live on the queryset rather than its query (private, as above).
    past._prefetch_related_lookups = queryset._prefetch_related_lookups  # type: ignore[attr-defined]
    past._iterable_class = queryset._iterable_class
    past._fields = queryset._fields  # type: ignore[attr-defined]
    return past


def _past_query(query: Query, at: datetime.datetime) -> AsOfQuery:
    """A copy of `query` reading the model's table (and its parents') as of `at`."""
    past = cast(AsOfQuery, query.chain(klass=AsOfQuery))  # chain() makes a `klass`
    past.as_of_at = at
    tables = past._past_models()
    for alias, table in list(past.alias_map.items()):
        if type(table) is BaseTable and table.table_name in tables:
            past.alias_map[alias] = PastTable(
                table.table_name, table.table_alias, tables[table.table_name], at
            )
        elif type(table) is Join and _is_parent_link(table, tables):
            past.alias_map[alias] = PastJoin(
                table.table_name,
                table.parent_alias,
                table.table_alias,
                table.join_type,
                table.join_field,
                table.nullable,
                table.filtered_relation,
                past=(tables[table.table_name], at),
            )
    return past


def _is_parent_link(join: Join, tables: dict[str, type[models.Model]]) -> bool:
    """Whether a join leads from a multi-table child to its parent (read as of the same
    moment); every other relation leads to the present."""
    remote = getattr(join.join_field, "remote_field", None)
    return (
        join.table_name in tables
        and getattr(remote, "parent_link", False)
        # A parent link is a OneToOneField (django-stubs types a join's field loosely).
        and concrete_model(cast("models.Field[Any, Any]", join.join_field).model) in tables.values()
    )


_READ_ONLY = (
    "as_of() gives the table as it was at {at}: it is read-only. Write to "
    "{model}.objects instead (or restore rows with revy.contrib.django.history.rollback)."
)


class AsOfQuerySet(models.QuerySet):
    """A queryset of a model as its table was at `query.as_of_at`; read-only."""

    query: AsOfQuery

    @property
    def as_of_at(self) -> datetime.datetime:
        """The moment this queryset shows."""
        # Set by as_of(), which makes every AsOfQuerySet; None only in an AsOfQuery that
        # Django builds on its own, with no queryset of the past.
        return cast(datetime.datetime, self.query.as_of_at)

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(_READ_ONLY.format(at=self.as_of_at.isoformat(), model=self.model.__name__))

    update = delete = _raw_delete = _update = _read_only
    create = get_or_create = update_or_create = _read_only
    bulk_create = bulk_update = select_for_update = _read_only
    aupdate = adelete = acreate = aget_or_create = aupdate_or_create = _read_only
    abulk_create = abulk_update = _read_only


class AsOfQuery(Query):
    """A query whose model's table (and its multi-table parents) is a derived table of the
    rows' recorded states at `as_of_at`."""

    def __init__(
        self,
        model: type[models.Model] | None,
        at: datetime.datetime | None = None,
        alias_cols: bool = True,
    ) -> None:
        super().__init__(model, alias_cols)
        self.as_of_at = at

    def _past_models(self) -> dict[str, type[models.Model]]:
        """The tables read as of `as_of_at`: the model's and its parents', by table name."""
        concrete = concrete_model(cast("type[models.Model]", self.model))  # as_of() gives one
        return {each._meta.db_table: each for each in (concrete, *concrete._meta.get_parent_list())}

    @property
    def base_table_class(self) -> Callable[[str, str | None], BaseTable]:  # type: ignore[override]
        past = self._past_models()

        def table(table_name: str, alias: str | None) -> BaseTable:
            model = past.get(table_name)
            if model is None or self.as_of_at is None:
                return BaseTable(table_name, alias)
            return PastTable(table_name, alias, model, self.as_of_at)

        return table

    @property
    def join_class(self) -> Callable[..., Join]:  # type: ignore[override]
        past = self._past_models()
        at = self.as_of_at

        def join(table_name: str, parent_alias: str, table_alias: str, *args: Any, **kwargs: Any):
            plain = Join(table_name, parent_alias, table_alias, *args, **kwargs)
            # Only the parent link of a multi-table child leads to the past (the parent row
            # is the same object); every other relation leads to the present.
            if at is not None and _is_parent_link(plain, past):
                return PastJoin(
                    table_name,
                    parent_alias,
                    table_alias,
                    *args,
                    past=(past[table_name], at),
                    **kwargs,
                )
            return plain

        return join


def _quote_alias(compiler: Any, alias: str | None) -> str:
    # Django 6.1 quotes table aliases too and deprecates quote_name_unless_alias().
    if django.VERSION >= (6, 1):
        return compiler.quote_name(alias)
    return compiler.quote_name_unless_alias(alias)


class PastTable(BaseTable):
    """The FROM entry of an `as_of()` query: a derived table in place of the model's table."""

    def __init__(
        self,
        table_name: str,
        alias: str | None,
        model: type[models.Model],
        at: datetime.datetime,
    ) -> None:
        super().__init__(table_name, alias)
        self.model = model
        self.at = at

    def as_sql(self, compiler: Any, connection: Any) -> _AsSqlType:
        sql, params = past_rows_sql(self.model, self.at, compiler.using, connection)
        return f"({sql}) {_quote_alias(compiler, self.table_alias)}", tuple(params)

    def relabeled_clone(self, change_map: dict[str | None, str]) -> PastTable:
        alias = change_map.get(self.table_alias, self.table_alias)
        return self.__class__(self.table_name, alias, self.model, self.at)

    @property
    def identity(self) -> tuple:
        return self.__class__, self.table_name, self.table_alias, self.at


class PastJoin(Join):
    """The join of a multi-table child to its parent, as of the same moment."""

    def __init__(self, *args: Any, past: tuple[type[models.Model], datetime.datetime], **kwargs):
        super().__init__(*args, **kwargs)
        self.past = past

    def as_sql(self, compiler: Any, connection: Any) -> _AsSqlType:
        sql, params = super().as_sql(compiler, connection)
        # Django writes "<join type> <table> [<alias>] ON (...)": swap the table for the past.
        quote = compiler.quote_name_unless_alias if django.VERSION < (6, 1) else None
        table = (quote or compiler.quote_name)(self.table_name)
        alias = "" if self.table_alias == self.table_name else f" {_alias_text(compiler, self)}"
        prefix = f"{self.join_type} {table}{alias} ON"
        if not sql.startswith(prefix):  # pragma: no cover - a Django that writes joins otherwise
            raise NotSupportedError("as_of() cannot read this join of a multi-table model.")
        model, at = self.past
        derived, derived_params = past_rows_sql(model, at, compiler.using, connection)
        rest = sql[len(prefix) :]
        past_table = f"({derived}) {_quote_alias(compiler, self.table_alias)}"
        return f"{self.join_type} {past_table} ON{rest}", (*derived_params, *params)

    def relabeled_clone(self, change_map: dict[str | None, str]) -> PastJoin:
        # As Join's, which builds the clone without the moment (`past` is required here).
        # django-stubs types Join's change map with None keys and FilteredRelation's
        # without; Django passes both the same dict.
        filtered_relation = (
            self.filtered_relation.relabeled_clone(change_map)  # type: ignore[arg-type]
            if self.filtered_relation is not None
            else None
        )
        return self.__class__(
            self.table_name,
            change_map.get(self.parent_alias, self.parent_alias),
            change_map.get(self.table_alias, self.table_alias),
            self.join_type,
            self.join_field,
            self.nullable,
            filtered_relation=filtered_relation,
            past=self.past,
        )

    @property
    def identity(self) -> tuple:
        return (*super().identity, self.past)


def _alias_text(compiler: Any, join: Join) -> str | None:
    # How Django itself renders a join's alias (unquoted before 6.1).
    if django.VERSION >= (6, 1):
        return compiler.quote_name(join.table_alias)
    return join.table_alias


# The derived table --------------------------------------------------------------------------


def past_rows_sql(
    model: type[models.Model], at: datetime.datetime, using: str, connection: Any
) -> tuple[str, list[Any]]:
    """Return the SELECT giving `model`'s rows at `at` with its columns, and its params.

    One row per recorded row: the state of its latest state-bearing delta at or before `at`
    (by id, as snapshots order them), unless that delta is a deletion.
    """
    vendor = connection.vendor
    if vendor not in _EXTRACTORS:
        raise NotSupportedError(
            f"as_of() supports SQLite and PostgreSQL, not {connection.display_name}."
        )
    delta_opts = get_object_delta_model()._meta
    quote = connection.ops.quote_name

    delta_model = get_object_delta_model()

    def column(attname: str) -> str:
        return quote(column_of(delta_model, attname))

    concrete = concrete_model(model)
    content_type = ContentType.objects.db_manager(using).get_for_model(concrete)
    columns: list[str] = []
    column_params: list[Any] = []
    for field in concrete._meta.local_concrete_fields:
        sql, params = _column(field, "d." + column("data"), connection)
        columns.append(f"{sql} AS {quote(field.column)}")
        column_params.extend(params)
    table = quote(delta_opts.db_table)
    states = ", ".join(["%s"] * len(STATE_ACTIONS))
    # The latest state-bearing delta of each row at `at`: MAX(id) per content id, through
    # the (content_type, content_id, id) index.
    sql = (
        f"SELECT {', '.join(columns)} FROM {table} d WHERE d.{column('id')} IN ("
        f"SELECT MAX(e.{column('id')}) FROM {table} e "
        f"WHERE e.{column('content_type_id')} = %s AND e.{column('action')} IN ({states}) "
        f"AND e.{column('created_at')} <= %s GROUP BY e.{column('content_id')}"
        f") AND d.{column('action')} <> %s"
    )
    if vendor == "postgresql":
        # A fence: PostgreSQL would otherwise push the outer filters into this query and
        # might cast other models' states to this model's column types before the IN
        # condition drops them.
        sql += " OFFSET 0"
    params = [
        *column_params,
        content_type.pk,
        *STATE_ACTIONS,
        connection.ops.adapt_datetimefield_value(at),
        "Delete",
    ]
    return sql, params


def _column(field: models.Field, data: str, connection: Any) -> tuple[str, list[Any]]:
    """The SQL of one field's value in a state (its default when the state lacks it)."""
    vendor = connection.vendor
    sql = _EXTRACTORS[vendor](field, data, connection)
    # What a snapshot holds for a missing key (`build_instance`): the field's default.
    default = field.get_db_prep_save(field.get_default(), connection)
    if default is None:
        return sql, []
    return f"CASE WHEN {_PRESENT[vendor](field, data)} THEN {sql} ELSE %s END", [default]


def _kind(field: models.Field) -> str:
    """The internal type of the value a field stores (a foreign key stores its target's)."""
    while field.is_relation and getattr(field, "target_field", None) is not None:
        field = cast("models.ForeignKey[Any, Any]", field).target_field
    return field.get_internal_type()


def _literal(text: str) -> str:
    # Keys are attnames (Python identifiers), written as SQL literals rather than params so
    # that a value used several times in one expression costs no bookkeeping.
    return "'" + text.replace("'", "''") + "'"


_INTEGERS = {
    "AutoField",
    "BigAutoField",
    "SmallAutoField",
    "IntegerField",
    "BigIntegerField",
    "SmallIntegerField",
    "PositiveIntegerField",
    "PositiveBigIntegerField",
    "PositiveSmallIntegerField",
}


# PostgreSQL: `data` is jsonb; `->>` gives a key's text, cast to the column's type.


def _postgres_present(field: models.Field, data: str) -> str:
    # `->` gives the JSON null for a null value, and SQL NULL only for a missing key.
    return f"({data} -> {_literal(field.attname)}) IS NOT NULL"


def _postgres(field: models.Field, data: str, connection: Any) -> str:
    kind = _kind(field)
    key = _literal(field.attname)
    text = f"({data} ->> {key})"
    if kind == "JSONField":
        return f"({data} -> {key})"
    if kind == "BinaryField":
        return f"decode({text}, 'base64')"
    if kind == "DurationField":
        # ISO 8601, "-P1DT00H00M00S" when negative: PostgreSQL reads it without the sign.
        return (
            f"(CASE WHEN left({text}, 1) = '-' THEN -(substr({text}, 2)::interval) "
            f"ELSE {text}::interval END)"
        )
    return f"{text}::{field.cast_db_type(connection)}"


# SQLite: `json_extract` gives SQL values; text is converted to the form Django stores.


def _sqlite_path(field: models.Field) -> str:
    return _literal('$."' + field.attname + '"')


def _sqlite_present(field: models.Field, data: str) -> str:
    return f"json_type({data}, {_sqlite_path(field)}) IS NOT NULL"


def _sqlite(field: models.Field, data: str, connection: Any) -> str:
    kind = _kind(field)
    path = _sqlite_path(field)
    value = f"json_extract({data}, {path})"
    if kind in _INTEGERS:
        return f"CAST({value} AS INTEGER)"
    if kind == "DecimalField":
        return f"CAST({value} AS NUMERIC)"
    if kind == "FloatField":
        return f"CAST({value} AS REAL)"
    if kind == "DateTimeField":
        # Stored by revy as ISO 8601 with its offset; Django stores UTC as "YYYY-MM-DD
        # HH:MM:SS[.ffffff]": strftime converts to UTC (keeping milliseconds only), the
        # microseconds are copied from the text.
        return (
            f"(strftime('%%Y-%%m-%%d %%H:%%M:%%S', {value}) || CASE WHEN instr({value}, '.') > 0 "
            f"THEN substr({value}, instr({value}, '.'), 7) ELSE '' END)"
        )
    if kind == "UUIDField":
        return f"replace({value}, '-', '')"  # Django stores the hex form on SQLite
    if kind == "JSONField":
        return (
            f"(CASE json_type({data}, {path}) WHEN 'object' THEN {value} "
            f"WHEN 'array' THEN {value} ELSE json_quote({value}) END)"
        )
    if kind == "DurationField":
        return _sqlite_duration(value)
    if kind == "BinaryField":
        _register_sqlite_functions(connection)
        return f"revy_base64_decode({value})"
    return value


def _sqlite_duration(value: str) -> str:
    """Microseconds (Django's SQLite form) from `[-]P{days}DT{HH}H{MM}M{SS}[.ffffff]S`."""
    parts = [
        f"CAST(substr({value}, instr({value}, 'P') + 1, "
        f"instr({value}, 'D') - instr({value}, 'P') - 1) AS INTEGER) * 86400000000",
        f"CAST(substr({value}, instr({value}, 'T') + 1, 2) AS INTEGER) * 3600000000",
        f"CAST(substr({value}, instr({value}, 'H') + 1, 2) AS INTEGER) * 60000000",
        f"CAST(substr({value}, instr({value}, 'M') + 1, 2) AS INTEGER) * 1000000",
        f"CASE WHEN instr({value}, '.') > 0 "
        f"THEN CAST(substr({value}, instr({value}, '.') + 1, 6) AS INTEGER) ELSE 0 END",
    ]
    sign = f"CASE WHEN substr({value}, 1, 1) = '-' THEN -1 ELSE 1 END"
    return f"(CASE WHEN {value} IS NULL THEN NULL ELSE ({sign}) * ({' + '.join(parts)}) END)"


def _base64_decode(value: Any) -> bytes | None:
    # SQLite may call it on rows a later condition drops: never fail on them.
    try:
        return None if value is None else base64.b64decode(value)
    except (TypeError, ValueError):
        return None


def _register_sqlite_functions(connection: Any) -> None:
    """Give this SQLite connection the base64 decoder binary fields need (once per connection)."""
    connection.ensure_connection()
    raw = connection.connection
    if connection.__dict__.get("_revy_functions_of") is not raw:
        raw.create_function("revy_base64_decode", 1, _base64_decode, deterministic=True)
        connection.__dict__["_revy_functions_of"] = raw


_EXTRACTORS: dict[str, Callable] = {"postgresql": _postgres, "sqlite": _sqlite}
_PRESENT: dict[str, Callable] = {"postgresql": _postgres_present, "sqlite": _sqlite_present}
