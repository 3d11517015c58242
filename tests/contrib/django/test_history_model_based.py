"""History equals reality: a model-based test over random sequences of writes.

A hypothesis `RuleBasedStateMachine` drives random operations, by several actors, against the
real database (the models of `tests.trustapp`): saves and `asave()`, in-place JSON mutation,
`update_fields`, `F()` expressions, `refresh_from_db(fields=...)`, `QuerySet.update()` and
`.delete()`, `bulk_create` (plain, `ignore_conflicts`, `update_conflicts`), `bulk_update`, M2M
`add/remove/set/clear` from both sides, deletes with cascades, savepoints that roll back,
pickled instances, `rollback()` and `revert()`.

Its shadow model is the database itself, read after every outermost context: the state of
every row at the end of each revision. After every step:

- the latest `snapshot()` of every row seen so far equals the row in the database (None once
  deleted), and the history names no row that never existed;
- `snapshot(revision=R)` of every row equals the state the shadow kept for R (None when the
  row did not exist then), for the revision the step recorded; at the end of each example
  for every revision, with `at=` and `delta=` points and `diff()` between revisions too;
- one outermost context writes at most one revision, and never an empty one;
- every content type a delta names exists, every attribute delta names its object delta's
  revision and row (no database constraint checks either), and no update records a field whose
  old and new values are equal;
- an edit's attribute deltas name the actor who assigned each field.

Examples are bounded by a hypothesis profile chosen with `REVY_PROPERTY_PROFILE`: `ci` (the
default: derandomized, so CI runs the same examples every time) or `long` (random, thousands
of examples). `REVY_PROPERTY_AVOID` overrides which known bugs the machine steps around (see
`AVOID`), e.g. `REVY_PROPERTY_AVOID=none` to hit them all.

The test runs on real transactions (`django_db(transaction=True)`): revisions are created
lazily inside the user's transaction and savepoints roll back, which is only what users get
when the test itself is not wrapped in a transaction.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import os
import pickle
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group as AuthGroup
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from django.core.management.color import no_style
from django.db import DatabaseError, IntegrityError, connection, models, transaction
from django.db.models import F, Value
from django.db.models.functions import Lower
from django.utils import timezone
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from revy import Context
from revy.contrib.django import registry
from revy.contrib.django.encoding import decode
from revy.contrib.django.history import (
    HistoryNotFound,
    ObjectAbsent,
    RevisionConflict,
    diff,
    history_of,
    revert,
    rollback,
    snapshot,
)
from revy.contrib.django.utils import (
    get_attribute_delta_model,
    get_object_delta_model,
    get_revision_model,
)
from tests.trustapp.models import (
    Doc,
    Group,
    Item,
    Membership,
    Place,
    ProxyItem,
    Shop,
    Stock,
    Tag,
)

# A search for counterexamples: once per database per CI run (see noxfile.py).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.search]

# Profiles -----------------------------------------------------------------------------------

settings.register_profile(
    "revy-ci",
    max_examples=50,
    stateful_step_count=20,
    derandomize=True,  # the same examples on every run: CI stays reproducible
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
    report_multiple_bugs=False,
)
settings.register_profile(
    "revy-long",
    max_examples=3000,
    stateful_step_count=50,
    # No example database: the draws depend on the database's keys (sequences move on), so a
    # saved example replays as FlakyStrategyDefinition, hiding the failure. The printed blob
    # (@reproduce_failure) is how a failure is replayed.
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
PROFILE = os.environ.get("REVY_PROPERTY_PROFILE", "ci")
STATS: Counter[str] = Counter()
# e.g. REVY_PROPERTY_EXAMPLES=5 for a quick look while working on the machine
EXAMPLES = os.environ.get("REVY_PROPERTY_EXAMPLES")

# Known bugs ----------------------------------------------------------------------------------

# Paths through known core bugs that the machine steps around until main fixes them, so that
# it keeps finding other bugs instead of the same one. Each is pinned by a strict-xfail test
# in test_history_counterexamples.py (named here); when that test passes, drop the name.
KNOWN_BUGS = {}
_avoid = os.environ.get("REVY_PROPERTY_AVOID")
if _avoid is None:
    AVOID = frozenset(KNOWN_BUGS)
else:
    AVOID = frozenset(name for name in _avoid.split(",") if name and name != "none")


def avoided(name: str | None) -> bool:
    return name in AVOID


# The models and rows the machine checks -----------------------------------------------------

ItemTag = Item.tags.through
TagLink = Tag.related.through
CHECKED = [Tag, Item, Doc, Group, Membership, Place, Shop, Stock, ItemTag, TagLink]

State = dict[str, Any]
Reality = dict[type, dict[Any, State]]


@dataclasses.dataclass(repr=False)
class Point:
    """A revision, a moment just after it, and the database's state at its end."""

    revision: models.Model
    moment: datetime.datetime
    reality: Reality
    touched: dict[type, set]  # the rows it changed or names: the ones whose state moved

    def __repr__(self) -> str:
        return f"<the end of revision {self.revision.pk}>"


def attnames(model: type[models.Model]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


def pk_of(model: type[models.Model], row: State) -> Any:
    pk = model._meta.pk
    if isinstance(pk, models.CompositePrimaryKey):
        return tuple(row[field.attname] for field in pk.fields)
    return row[pk.attname]


def read_reality(checked: list[type[models.Model]]) -> Reality:
    """Every row of the checked models, as {model: {pk: {attname: value}}}."""
    reality: Reality = {}
    for model in checked:
        names = attnames(model)
        rows = model._base_manager.order_by().values_list(*names)
        reality[model] = {}
        for values in rows:
            row = dict(zip(names, values, strict=True))
            reality[model][pk_of(model, row)] = row
    return reality


def state_of(instance: models.Model | None) -> State | None:
    if instance is None:
        return None
    return {name: getattr(instance, name) for name in attnames(type(instance))}


def differences(expected: State | None, actual: State | str | None) -> str | None:
    if avoided("auto_now_only_save"):
        # A save that changes nothing but an auto_now field records nothing (yet).
        expected, actual = _without_auto_now(expected), _without_auto_now(actual)
    if identical(expected, actual):
        return None
    if expected is None or not isinstance(actual, dict):
        return f"expected {expected!r}, history has {actual!r}"
    return ", ".join(
        f"{name}: expected {expected.get(name)!r}, history has {actual.get(name)!r}"
        for name in expected
        if not identical(expected.get(name), actual.get(name))
    )


def identical(a: Any, b: Any) -> bool:
    """Python's equality, except that a boolean equals a boolean only: in a JSON value, 0 and
    false (1 and true) are different values, which the database tells apart."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(identical(a[key], b[key]) for key in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _without_auto_now(state: Any) -> Any:
    if isinstance(state, dict) and "touched" in state:
        return {name: value for name, value in state.items() if name != "touched"}
    return state


def content_pk(model: type[models.Model], content_id: str) -> Any:
    """The primary key a delta's `content_id` names (a composite one is a JSON list)."""
    pk = model._meta.pk
    if isinstance(pk, models.CompositePrimaryKey):
        parts = json.loads(content_id)
        return tuple(field.to_python(part) for field, part in zip(pk.fields, parts, strict=True))
    return pk.to_python(content_id)


def own_history(model: type[models.Model], pk: Any) -> models.QuerySet:
    """The row's own deltas: `history_of()` without those of its many-to-many links."""
    return history_of(model, pk).filter(content_type=ContentType.objects.get_for_model(model))


# Values ---------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from(["", "x", "é"]),
    lambda children: (
        st.lists(children, max_size=2)
        | st.dictionaries(st.sampled_from("abc"), children, max_size=2)
    ),
    max_leaves=4,
)
json_documents = st.dictionaries(st.sampled_from("abc"), json_values, max_size=3) | st.lists(
    json_values, max_size=2
)


def amounts() -> st.SearchStrategy:
    saved_form = [Decimal("1.0000"), Decimal("2.5000"), Decimal("-0.0001")]
    if avoided("decimal_form"):
        return st.sampled_from(saved_form)
    return st.sampled_from([0, 1, Decimal("1"), Decimal("2.5"), *saved_form])


labels = st.sampled_from(["", "a", "b", "Ä"])
# Few codes, so that upserts and ignore_conflicts meet existing rows.
POOL_CODES = [f"c{i}" for i in range(6)]


# What Django answers a save of an instance whose row is gone, when it cannot insert it again.
STALE_SAVE_REFUSALS = (
    "did not affect any rows",
    "F() expressions can only be used to update",
    "Cannot force an update in save() with no primary key",
)


class _Rollback(Exception):
    """Raised to roll a savepoint back."""


# The machine ---------------------------------------------------------------------------------


class HistoryMachine(RuleBasedStateMachine):
    """Random writes; after each, the history must equal what the database held."""

    actors: list[Any] = []  # set by the test: [None, users, a non-user actor]

    def __init__(self) -> None:
        super().__init__()
        self.checked = [m for m in CHECKED if not (m is Stock and avoided("composite_pk"))]
        _wipe()
        if not avoided("lazy_content_types"):
            # As in a process that never used them: Django creates no content type for
            # automatic through models until asked, and then maybe in a user's transaction.
            _forget_content_types(ItemTag, TagLink)
        self.sequence = itertools.count(1)
        # Explicit primary keys of new items: negative, so that no sequence ever reaches them;
        # counted per example, like the sequences (`_wipe`), so that a replay meets the same
        # keys (a set of keys, such as the one Django adds links through, is ordered by them).
        self.negative_ids = itertools.count(1)
        self.held: list[models.Model] = []
        self.points: list[Point] = []  # oldest first
        self.unchecked_points = 0
        self.reality: Reality = read_reality(self.checked)
        self.seen: dict[type, set] = {model: set() for model in self.checked}
        # Rows changed in the database or named by new deltas since the last check.
        self.dirty: dict[type, set] = {model: set() for model in self.checked}
        self.doc_serials: dict[Any, int] = {}
        self.last_revision_id = 0
        self.last_delta_id = 0
        self.last_attribute_id = 0
        self.expectations: list[Callable[[models.Model], None]] = []
        # Set when a block uses an instance held since an earlier step, or restores history:
        # its writes may legitimately fail at commit (deferred foreign keys to rows gone).
        self.fragile = False
        self.block_actor: Any = None

    # Blocks ------------------------------------------------------------------------------

    def count(self, what: str) -> None:
        """Count what the examples did (REVY_PROPERTY_STATS=1 prints it)."""
        STATS[what] += 1

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self.sequence)}"

    def actor(self, data, label: str = "actor") -> Any:
        return data.draw(st.sampled_from(self.actors), label=label)

    @contextmanager
    def block(self, data, *, may_fail: bool = False) -> Iterator[None]:
        """One outermost context (one revision), in or around a transaction; then capture."""
        actor = self.block_actor = self.actor(data, "block actor")
        shape = data.draw(st.sampled_from(["context", "atomic around", "atomic inside"]))
        note(f"block: {shape}, actor {actor!r}")
        self.count(f"block: {shape}")
        self.expectations = []
        self.fragile = False
        try:
            if shape == "context":
                with Context(actor=actor):
                    yield
            elif shape == "atomic around":
                with transaction.atomic(), Context.via_actor(actor):
                    yield
            else:
                with Context.via_actor(actor), transaction.atomic():
                    yield
        except IntegrityError as error:
            # A stale instance or a restore may point at a row deleted since, which only
            # fails at commit (deferred foreign keys): legitimate, and it must leave nothing.
            if not (may_fail and self.fragile):
                raise
            note(f"block failed: {error}")
            self.count("block failed at commit (legitimately)")
            self.expectations = []
        self.capture()

    def capture(self) -> None:
        """Keep the database's state at the end of the revision the block wrote, if any."""
        moment = timezone.now()
        previous, self.reality = self.reality, read_reality(self.checked)
        self.doc_serials.update((pk, row["serial"]) for pk, row in self.reality[Doc].items())
        changed = {
            model: {
                pk
                for pk in previous[model].keys() | self.reality[model].keys()
                if previous[model].get(pk) != self.reality[model].get(pk)
            }
            for model in self.checked
        }
        revisions = list(
            get_revision_model().objects.filter(pk__gt=self.last_revision_id).order_by("pk")
        )
        assert len(revisions) <= 1, f"one context wrote {len(revisions)} revisions"
        touched = changed
        for revision in revisions:
            self.last_revision_id = revision.pk
            named = self.rows_named(revision)
            assert any(named.values()), f"revision {revision.pk} is empty"
            touched = {model: changed[model] | named[model] for model in self.checked}
            self.points.append(Point(revision, moment, self.reality, touched))
            self.count("revisions")
            self.unchecked_points += 1
            for expectation in self.expectations:
                expectation(revision)
        for model in self.checked:
            self.dirty[model] |= touched[model]
            self.seen[model] |= touched[model]
        self.note_doc_serials(touched[Doc])
        self.expectations = []

    def note_doc_serials(self, pks: set) -> None:
        """Learn the serials of docs a revision named that the database no longer holds (one
        created and deleted in one block): `rows` orders docs by serial, and their random keys
        must not decide the order, or a replay picks another row."""
        unknown = {registry.content_id(Doc, pk) for pk in pks if pk not in self.doc_serials}
        if not unknown:
            return
        states = (
            get_object_delta_model()
            .objects.filter(
                content_type=ContentType.objects.get_for_model(Doc), content_id__in=unknown
            )
            .exclude(data=None)
            .order_by("id")
            .values_list("content_id", "data")
        )
        for content_id, state in states:
            if isinstance(state, dict) and "serial" in state:
                self.doc_serials[content_pk(Doc, content_id)] = state["serial"]

    def rows_named(self, revision: models.Model) -> dict[type, set]:
        """The rows the revision's deltas name, by model."""
        named: dict[type, set] = {model: set() for model in self.checked}
        deltas = get_object_delta_model().objects.filter(revision=revision)
        for type_id, content_id in deltas.values_list("content_type_id", "content_id"):
            content_type = ContentType.objects.filter(pk=type_id).first()
            assert content_type is not None, (
                f"revision {revision.pk} names content type {type_id}, which does not exist"
            )
            model = content_type.model_class()
            assert model in self.checked, (
                f"revision {revision.pk} names a row of {content_type}, which nothing wrote"
            )
            pk = content_pk(model, content_id)
            if pk is not None:
                named[model].add(pk)
        return named

    def run_ops(self, data, count: int) -> None:
        for _ in range(count):
            op = data.draw(st.sampled_from(self.operations()), label="operation")
            self.count(op.__name__)
            if data.draw(st.booleans(), label="switch actor"):
                actor = self.actor(data)
                note(f"set_actor({actor!r})")
                Context.set_actor(actor)
            if data.draw(st.integers(0, 4), label="nested context") == 0:
                with Context(object_delta_description="nested"):
                    op(data)
            else:
                op(data)

    # Picking rows ------------------------------------------------------------------------

    @staticmethod
    def order(model: type[models.Model]) -> tuple[str, ...]:
        """The order the machine lists rows of `model` in, the same in a replay."""
        # Docs have random keys: draws must not depend on them, or replays differ.
        return ("serial", "pk") if model._meta.concrete_model is Doc else ("pk",)

    def pks(self, model: type[models.Model]) -> list:
        """The rows of `model` in the database now (that the machine may touch)."""
        pks = model._base_manager.order_by(*self.order(model)).values_list("pk", flat=True)
        if model is Place and avoided("mti"):
            # Only places that are no shop: a shop's parent row has no history of its own.
            pks = pks.filter(shop=None).exclude(pk__in=self.seen[Shop])
        return list(pks)

    def rows(self, model: type[models.Model], pks: set | None = None) -> list:
        """The rows of `model` seen so far (or those of `pks`) that the checks compare."""
        pks = self.seen[model] if pks is None else pks
        if model is Place and avoided("mti"):
            pks = pks - self.seen[Shop] - set(self.reality[Shop])
        if model is Doc:
            return sorted(pks, key=lambda pk: (self.doc_serials.get(pk, 0), pk))
        # The keys' own order, not their text's: PostgreSQL's sequences move on between
        # examples, and "99" < "100" flips when they do, so a replay would pick other rows.
        return sorted(pks)

    def pick(self, data, model: type[models.Model]) -> Any | None:
        pks = self.pks(model)
        if not pks:
            return None
        return data.draw(st.sampled_from(pks), label=f"{model.__name__} pk")

    def pick_some(self, data, model: type[models.Model]) -> list:
        pks = self.pks(model)
        if not pks:
            return []
        return data.draw(st.lists(st.sampled_from(pks), min_size=1, max_size=3, unique=True))

    def load(self, data, model: type[models.Model]) -> models.Model | None:
        """An instance of a row: held since an earlier step, or loaded now (maybe deferred)."""
        held = [obj for obj in self.held if obj._meta.concrete_model is model._meta.concrete_model]
        if held and data.draw(st.booleans(), label="use a held instance"):
            instance = data.draw(st.sampled_from(held), label="held instance")
            self.count("held instance used")
            self.fragile = True
            if data.draw(st.integers(0, 3)) == 0 and not avoided("pickle"):
                note("pickle round trip")
                self.count("pickle round trip")
                instance = pickle.loads(pickle.dumps(instance))
            return instance
        pk = self.pick(data, model)
        if pk is None:
            return None
        queryset = model.objects.filter(pk=pk)
        if data.draw(st.integers(0, 4)) == 0:
            attname = data.draw(st.sampled_from(sorted(EDITABLE[model])))
            field = _field(model, attname).name
            note(f"load {model.__name__} {pk!r} with only({field!r})")
            queryset = queryset.only(field)
        instance = queryset.first()
        if instance is not None:
            # Later operations (of this block, too) may reuse it: after a savepoint rolled
            # back, say.
            self.held = [*self.held[-3:], instance]
        return instance

    # Operations ---------------------------------------------------------------------------

    def operations(self) -> list[Callable]:
        ops = [
            self.op_create,
            self.op_edit,
            self.op_f_expression,
            self.op_queryset_update,
            self.op_delete,
            self.op_queryset_delete,
            self.op_bulk_create,
            self.op_bulk_update,
            self.op_m2m,
            self.op_restore,
            self.op_django_refuses,
        ]
        if not avoided("json_in_place"):
            ops.append(self.op_json_in_place)
        return ops

    def models_for(self, data, choices: list[type[models.Model]]) -> type[models.Model]:
        choices = [m for m in choices if m._meta.concrete_model in self.checked]
        return data.draw(st.sampled_from(choices), label="model")

    def new_values(self, data, model: type[models.Model], *, creating: bool) -> dict[str, Any]:
        concrete = model._meta.concrete_model
        values: dict[str, Any] = {}
        if concrete is Item:
            values = {"code": self.fresh("n")} if creating else {}
            if creating and avoided("decimal_form"):
                values["amount"] = Decimal("1.0000")  # not the default, the integer 1
        elif concrete is Tag and creating:
            values = {"slug": self.fresh("t")}
        elif concrete is Stock and creating:
            values = {
                "shop_code": data.draw(st.sampled_from(["s1", "s2"])),
                "sku": next(self.sequence),
            }
        elif concrete is Doc and creating:
            owner = self.pick(data, Item)
            if owner is None:
                return {}
            values = {"owner_id": owner, "serial": next(self.sequence)}
        elif concrete is Membership and creating:
            group, item = self.pick(data, Group), self.pick(data, Item)
            if group is None or item is None:
                return {}
            if Membership.objects.filter(group=group, item=item).exists():
                return {}
            values = {"group_id": group, "item_id": item}
        editable = EDITABLE[concrete]
        names = data.draw(st.lists(st.sampled_from(sorted(editable)), unique=True, max_size=3))
        for name in names:
            values[name] = editable[name](self, data)
        return values

    def op_create(self, data) -> None:
        model = self.models_for(
            data, [Item, ProxyItem, Tag, Doc, Group, Membership, Place, Shop, Stock]
        )
        values = self.new_values(data, model, creating=True)
        if not values:
            return
        how = data.draw(st.sampled_from(["create", "save", "asave", "assign"]), label="create how")
        note(f"create {model.__name__} {values!r} ({how})")
        if how == "create":
            model.objects.create(**values)
            return
        if how == "assign":  # built empty, then fields assigned by several actors
            instance = model()
            self.assign(data, instance, values)
        else:
            instance = model(**values)
        if how == "asave":
            async_to_sync(instance.asave)()
        else:
            instance.save()

    def assign(self, data, instance: models.Model, values: dict[str, Any]) -> list:
        """Assign each value as a drawn actor (or the current one); return who assigned what."""
        assigned = []
        for name, value in values.items():
            if data.draw(st.booleans(), label="assign as another actor"):
                actor = self.actor(data)
                with Context.via_actor(actor):
                    setattr(instance, name, value)
            else:
                actor = Context.get_actor()
                setattr(instance, name, value)
            assigned.append((name, value, actor))
        return assigned

    def op_edit(self, data) -> None:
        model = self.models_for(
            data, [Item, ProxyItem, Tag, Doc, Group, Membership, Place, Shop, Stock]
        )
        instance = self.load(data, model)
        if instance is None:
            return
        if data.draw(st.integers(0, 3), label="refresh first") == 0:
            names = sorted(EDITABLE[model._meta.concrete_model])
            if not avoided("refresh_relations"):
                names += RELATIONS.get(model._meta.concrete_model, [])
            fields = data.draw(
                st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True)
            )
            note(f"refresh_from_db(fields={fields!r})")
            try:
                instance.refresh_from_db(fields=fields)
            except ObjectDoesNotExist:  # a held instance whose row is gone
                return
        values = self.new_values(data, model, creating=False)
        note(f"edit {model.__name__} {instance.pk!r}: {values!r}")
        self.assign(data, instance, values)
        self.save(data, instance)

    def save(self, data, instance: models.Model, always: list[str] | None = None) -> None:
        """save(), asave() or save(update_fields=...) (with the names in `always`)."""
        how = data.draw(st.sampled_from(["save", "asave", "update_fields"]), label="save how")
        kwargs: dict[str, Any] = {}
        if how == "update_fields":
            names = sorted(EDITABLE[instance._meta.concrete_model])
            kwargs["update_fields"] = data.draw(
                st.lists(st.sampled_from(names), min_size=1, unique=True)
            )
            kwargs["update_fields"] += [
                name for name in always or () if name not in kwargs["update_fields"]
            ]
        note(f"{'asave' if how == 'asave' else 'save'}({kwargs})")
        self.count(f"save: {how}")

        def write() -> None:
            if how == "asave":
                async_to_sync(instance.asave)(**kwargs)
            else:
                instance.save(**kwargs)

        if not self.fragile:
            write()
            return
        try:
            with transaction.atomic():
                write()
        except IntegrityError as error:
            # A held instance whose row is gone is inserted again: its unique code may be
            # taken since.
            note(f"save failed: {error}")
        except ObjectDoesNotExist as error:
            # ... or Django loads one of its deferred fields first, from a row that is gone.
            note(f"save failed: {error}")
        except (DatabaseError, ValueError) as error:
            # ... and with update_fields (given, or the loaded fields of a deferred instance)
            # Django refuses instead; an F() left on the instance by an earlier save cannot be
            # inserted.
            if not any(refusal in str(error) for refusal in STALE_SAVE_REFUSALS):
                raise
            note(f"save failed: {error}")

    def op_json_in_place(self, data) -> None:
        instance = self.load(data, Item)
        if instance is None or "data" not in instance.__dict__:
            return
        value = data.draw(json_values, label="json value")
        document = instance.data
        if isinstance(document, dict):
            key = data.draw(st.sampled_from("abc"))
            note(f"item.data[{key!r}] = {value!r} (in place)")
            document[key] = value
        elif isinstance(document, list):
            note(f"item.data.append({value!r}) (in place)")
            document.append(value)
        else:
            return
        self.save(data, instance)

    def op_f_expression(self, data) -> None:
        instance = self.load(data, Item)
        if instance is None:
            return
        step = data.draw(st.integers(-2, 2), label="step")
        note(f"item {instance.pk}: count = F('count') + {step}")
        instance.count = F("count") + step
        self.save(data, instance, always=["count"] if avoided("expression_left_unsaved") else [])

    def op_queryset_update(self, data) -> None:
        model = self.models_for(
            data, [Item, ProxyItem, Tag, Doc, Group, Membership, Place, Shop, Stock]
        )
        pks = self.pick_some(data, model)
        concrete = model._meta.concrete_model
        values = self.new_values(data, model, creating=False)
        values.pop("code", None)  # one code for several rows would collide
        if concrete is Item and data.draw(st.booleans(), label="F() in update"):
            values["count"] = F("count") + 1
        if not values:
            return
        note(f"{model.__name__}.objects.filter(pk__in={pks!r}).update(**{values!r})")
        model.objects.filter(pk__in=pks).update(**values)

    def op_delete(self, data) -> None:
        model = self.models_for(
            data, [Item, ProxyItem, Tag, Doc, Group, Membership, Place, Shop, Stock]
        )
        instance = self.load(data, model)
        # A deleted instance has no key (a composite one has None parts): Django refuses it.
        if (
            instance is None
            or instance.pk is None
            or (isinstance(instance.pk, tuple) and None in instance.pk)
        ):
            return
        note(f"delete {model.__name__} {instance.pk!r}")
        if data.draw(st.booleans(), label="adelete"):
            async_to_sync(instance.adelete)()
        else:
            instance.delete()

    def op_queryset_delete(self, data) -> None:
        model = self.models_for(
            data, [Item, Tag, Doc, Group, Membership, Place, Shop, Stock, ItemTag, TagLink]
        )
        pks = self.pick_some(data, model)
        note(f"{model.__name__}.objects.filter(pk__in={pks!r}).delete()")
        model._base_manager.filter(pk__in=pks).delete()

    def op_bulk_create(self, data) -> None:
        model = self.models_for(data, [Item, ProxyItem, Tag, Doc, Place, Stock])
        concrete = model._meta.concrete_model
        mode = data.draw(st.sampled_from(["plain", "ignore_conflicts", "update_conflicts"]))
        if mode == "update_conflicts" and concrete is not Item:
            mode = "plain"
        objs = []
        for _ in range(data.draw(st.integers(1, 3), label="rows")):
            values = self.new_values(data, model, creating=True)
            if not values:
                return
            if concrete is Item and mode != "plain" and not avoided(mode):
                values["code"] = data.draw(st.sampled_from(POOL_CODES))
            elif concrete is Item and not avoided("bulk_expressions") and data.draw(st.booleans()):
                values["code"] = Lower(Value(values["code"].upper()))  # stored: the code
            if concrete is Item and mode == "ignore_conflicts":
                # Without a returned pk revy cannot tell inserted rows from conflicts (a
                # documented limitation): give one, an existing one to conflict or a new
                # negative one, clear of the pk sequence.
                new = st.just(-next(self.negative_ids))
                existing = [] if avoided(mode) else self.pks(Item)
                choices = new | st.sampled_from(existing) if existing else new
                values["id"] = data.draw(choices, label="explicit id")
            if concrete is Tag and mode == "ignore_conflicts" and not avoided(mode):
                existing = self.pks(Tag)
                if existing and data.draw(st.booleans()):
                    values["slug"] = data.draw(st.sampled_from(existing))
            objs.append(model(**values))
        if concrete is Item and len({str(o.code) for o in objs}) < len(objs):
            return  # one statement cannot upsert one row twice
        kwargs: dict[str, Any] = {}
        if mode == "ignore_conflicts":
            kwargs["ignore_conflicts"] = True
        elif mode == "update_conflicts":
            kwargs.update(
                update_conflicts=True,
                unique_fields=["code"],
                update_fields=data.draw(
                    st.lists(st.sampled_from(["count", "amount", "data"]), min_size=1, unique=True)
                ),
            )
        note(f"{model.__name__}.objects.bulk_create({[state_of(o) for o in objs]!r}, {kwargs})")
        self.count(f"bulk_create: {mode}")
        model.objects.bulk_create(objs, **kwargs)

    def op_bulk_update(self, data) -> None:
        model = self.models_for(data, [Item, ProxyItem, Tag, Doc, Place, Shop, Stock, Membership])
        concrete = model._meta.concrete_model
        # Ordered: the values drawn below go to the rows in this order. Without ORDER BY,
        # SQLite returns docs in their random keys' order, and PostgreSQL any rows in their
        # physical order, which the free space earlier examples left decides.
        queryset = model.objects.filter(pk__in=self.pick_some(data, model))
        objs = list(queryset.order_by(*self.order(model)))
        if not objs:
            return
        names = data.draw(
            st.lists(st.sampled_from(sorted(EDITABLE[concrete])), min_size=1, unique=True)
        )
        names = [name for name in names if name != "code"] or ["code"]
        for obj in objs:
            values = {}
            for name in names:
                values[name] = (
                    self.fresh("n") if name == "code" else EDITABLE[concrete][name](self, data)
                )
                if name == "count" and not avoided("bulk_expressions") and data.draw(st.booleans()):
                    values[name] = F("count") + 1
            self.assign(data, obj, values)
        note(f"{model.__name__}.objects.bulk_update({[o.pk for o in objs]!r}, {names!r})")
        model.objects.bulk_update(objs, names)

    def op_m2m(self, data) -> None:
        relation = data.draw(
            st.sampled_from(
                ["item.tags", "tag.items", "tag.related", "group.members", "item.groups"]
            )
        )
        source, target, attr = {
            "item.tags": (Item, Tag, "tags"),
            "tag.items": (Tag, Item, "items"),
            "tag.related": (Tag, Tag, "related"),
            "group.members": (Group, Item, "members"),
            "item.groups": (Item, Group, "groups"),
        }[relation]
        if relation in {"group.members", "item.groups"} and avoided("custom_through_add"):
            return
        if relation == "tag.related" and avoided("symmetrical_add"):
            return
        obj = self.load(data, source)
        if obj is None or obj.pk is None:
            return
        manager = getattr(obj, attr)
        # Ordered (see op_bulk_update): Django adds the links in this order (through a set,
        # whose order follows insertion when keys collide), and later steps pick links by key.
        queryset = target._base_manager.filter(pk__in=self.pick_some(data, target))
        others = list(queryset.order_by(*self.order(target)))
        action = data.draw(st.sampled_from(["add", "remove", "set", "clear"]))
        kwargs = {}
        if relation in {"group.members", "item.groups"} and action in {"add", "set"}:
            kwargs["through_defaults"] = {"role": data.draw(st.sampled_from(["member", "lead"]))}
        note(
            f"{relation}: {source.__name__} {obj.pk!r}.{attr}.{action}({[o.pk for o in others]!r})"
        )
        self.count(f"m2m: {relation}.{action}")
        if action == "clear":
            manager.clear()
        elif action == "set":
            manager.set(others, **kwargs)
        else:
            getattr(manager, action)(*others, **kwargs)

    def deletes_a_shop(self, revision: models.Model) -> bool:
        shop_type = ContentType.objects.get_for_model(Shop)
        deltas = get_object_delta_model().objects.filter(revision=revision, action="Delete")
        return deltas.filter(content_type=shop_type).exists()

    def op_django_refuses(self, data) -> None:
        """Wrong usage Django refuses before any SQL: its own exception, the block goes on."""
        cases = sorted(case for case, (_, _, bug) in REFUSED.items() if not avoided(bug))
        case = data.draw(st.sampled_from(cases), label="refused")
        note(f"Django refuses: {case}")
        error, attempt, _ = REFUSED[case]
        with pytest.raises(error):
            attempt()

    def op_restore(self, data) -> None:
        if not self.points:
            return
        self.fragile = True
        revision = data.draw(st.sampled_from(self.points), label="point").revision
        if data.draw(st.booleans(), label="revert"):
            force = data.draw(st.booleans(), label="force")
            if avoided("mti_recreate") and self.deletes_a_shop(revision):
                return
            note(f"revert(revision {revision.pk}, force={force})")
            try:
                with transaction.atomic():
                    revert(revision, force=force)
            except (RevisionConflict, IntegrityError) as error:
                note(f"revert refused: {type(error).__name__}: {error}")
                self.count(f"revert: {type(error).__name__}")
            else:
                self.count("revert: done")
            return
        model = self.models_for(data, self.checked)
        candidates = self.rows(model)
        if not candidates:
            return
        pk = data.draw(st.sampled_from(candidates), label="row")
        if (
            avoided("mti_recreate")
            and model is Shop
            and not Shop.objects.filter(pk=pk).exists()
            and Place.objects.filter(pk=pk).exists()
        ):
            return  # re-creating a shop onto its existing place
        note(f"rollback({model.__name__}, {pk!r}, revision {revision.pk})")
        try:
            with transaction.atomic():
                rollback(model, pk, revision=revision)
        except (ObjectAbsent, IntegrityError) as error:
            note(f"rollback refused: {type(error).__name__}: {error}")
            self.count(f"rollback: {type(error).__name__}")
        else:
            self.count("rollback: done")

    # Rules ------------------------------------------------------------------------------

    @initialize(data=st.data())
    def populate(self, data) -> None:
        """A few rows of every model, so that the first operations find something to change."""
        with self.block(data):
            items = [
                Item.objects.create(code=self.fresh("n"), amount=Decimal("1.0000"))
                for _ in range(3)
            ]
            tags = [Tag.objects.create(slug=self.fresh("t")) for _ in range(3)]
            for index, item in enumerate(items[:2]):
                Doc.objects.create(
                    owner=item,
                    reviewer=items[2],
                    source=items[2],
                    editor=items[index],
                    serial=next(self.sequence),
                )
            groups = [Group.objects.create(name=name) for name in ("a", "b")]
            if not avoided("custom_through_add"):
                groups[0].members.add(*items[:2], through_defaults={"role": "lead"})
            if avoided("lazy_content_types"):  # else the first links come from the operations
                items[0].tags.add(*tags[:2])
                if not avoided("symmetrical_add"):
                    tags[0].related.add(tags[1])
            Place.objects.create(name="p")
            Shop.objects.create(name="s")
            if not avoided("composite_pk"):
                Stock.objects.create(shop_code="s1", sku=next(self.sequence))

    @rule(data=st.data())
    def write(self, data) -> None:
        """One context with one to three operations."""
        with self.block(data, may_fail=True):
            self.run_ops(data, data.draw(st.integers(1, 3), label="operations"))

    @rule(data=st.data())
    def savepoint_rolls_back(self, data) -> None:
        """Operations, then more in a savepoint that rolls back, then more."""
        with self.block(data, may_fail=True):
            self.run_ops(data, data.draw(st.integers(0, 2), label="before"))
            try:
                with transaction.atomic():
                    self.run_ops(data, data.draw(st.integers(1, 2), label="rolled back"))
                    raise _Rollback
            except _Rollback:
                note("savepoint rolled back")
                self.count("savepoint rolled back")
                if avoided("savepoint_stale_base"):
                    self.held = []  # what they knew of the rows may be stale
            self.run_ops(data, data.draw(st.integers(0, 2), label="after"))

    @rule(data=st.data())
    def hold(self, data) -> None:
        """Keep an instance for later steps, loaded inside a context or outside any."""
        model = data.draw(st.sampled_from([Item, ProxyItem, Doc, Tag, Shop, Place]))
        pk = self.pick(data, model)
        if pk is None:
            return
        if data.draw(st.booleans(), label="load inside a context"):
            with Context():
                instance = model.objects.get(pk=pk)
        else:
            instance = model.objects.get(pk=pk)
        note(f"hold {model.__name__} {pk!r}")
        self.held = [*self.held[-3:], instance]

    @rule(data=st.data())
    def edit_by_actors(self, data) -> None:
        """One edit of a freshly loaded row, field by field by several actors; check who."""
        model = self.models_for(data, [Item, Tag, Doc, Place, Shop])
        with self.block(data):
            pk = self.pick(data, model)
            if pk is None:
                return
            instance = model.objects.get(pk=pk)
            concrete = model._meta.concrete_model
            scalar = [name for name in sorted(EDITABLE[concrete]) if name != "data"]
            assignments = []
            for _ in range(data.draw(st.integers(1, 4), label="assignments")):
                name = data.draw(st.sampled_from(scalar), label="field")
                value = EDITABLE[concrete][name](self, data)
                actor = self.actor(data)
                with Context.via_actor(actor):
                    setattr(instance, name, value)
                assignments.append((name, value, actor))
            note(f"edit {model.__name__} {pk!r} by actors: {assignments!r}")
            base = {name: getattr(model.objects.get(pk=pk), name) for name in scalar}
            instance.save()
            self.expectations.append(
                _attribution_check(concrete, pk, base, assignments, self.block_actor)
            )
            self.count("attribution checked")

    # Invariants ---------------------------------------------------------------------------

    @invariant()
    def history_equals_reality(self) -> None:
        """The rows changed since the last step: latest state and state at the new points."""
        for model in self.checked:
            rows = self.rows(model, self.dirty[model])
            self.check_latest(model, rows)
            self.check_lifecycle(model, rows)
            self.dirty[model] = set()
        for point in self.points[len(self.points) - self.unchecked_points :]:
            self.check_point(point)
        self.unchecked_points = 0
        self.check_new_deltas()

    def check_latest(self, model: type[models.Model], pks: list) -> None:
        for pk in pks:
            expected = self.reality[model].get(pk)
            try:
                recorded = state_of(snapshot(model, pk))
            except HistoryNotFound as error:
                recorded = f"HistoryNotFound: {error}"
            problem = differences(expected, recorded)
            assert problem is None, f"latest {model.__name__} {pk!r}: {problem}"

    def check_lifecycle(self, model: type[models.Model], pks: list) -> None:
        """A row's deltas tell a possible story: created once, changed while it exists."""
        for pk in pks:
            actions = list(own_history(model, pk).order_by("pk").values_list("action", flat=True))
            exists = False
            for action in actions:
                assert action != "Create" or not exists, (
                    f"{model.__name__} {pk!r} created while it existed: {actions}"
                )
                assert action not in ("Update", "Delete") or exists, (
                    f"{model.__name__} {pk!r}: {action} of a row that did not exist: {actions}"
                )
                exists = {"Create": True, "Delete": False}.get(action, exists)
            assert exists == (pk in self.reality[model]), (
                f"{model.__name__} {pk!r}: its history {actions} says it "
                f"{'exists' if exists else 'does not exist'}"
            )

    def check_point(self, point: Point) -> None:
        """`snapshot(revision=R)` of every row that changed in R, or that R names."""
        for model, pks in point.touched.items():
            for pk in self.rows(model, pks):
                recorded = state_of(snapshot(model, pk, revision=point.revision))
                problem = differences(point.reality[model].get(pk), recorded)
                assert problem is None, (
                    f"{model.__name__} {pk!r} at revision {point.revision.pk}: {problem}"
                )

    def check_new_deltas(self) -> None:
        """Every content type a new delta names exists; no update records an unchanged field."""
        deltas = list(
            get_object_delta_model()
            ._base_manager.filter(pk__gt=self.last_delta_id)
            .values_list("pk", "action", "content_type_id", "actor_type_id")
        )
        attributes = list(
            get_attribute_delta_model()
            ._base_manager.filter(pk__gt=self.last_attribute_id)
            .values_list(
                "pk",
                "parent_id",
                "content_type_id",
                "actor_type_id",
                "content_id",
                "field_name",
                "old_value",
                "new_value",
                # No database constraint checks these: the writers' guarantee is tested here.
                "revision_id",
                "parent__revision_id",
                "parent__content_type_id",
                "parent__content_id",
            )
        )
        for row in attributes:
            own = (row[8], row[2], row[4])  # revision, content type, content id
            parents = tuple(row[9:12])
            assert own == parents, (
                f"attribute delta {row[0]} names revision and row {own}, its object delta "
                f"{row[1]} {parents}"
            )
        attributes = [row[:8] for row in attributes]
        named = {row[2] for row in deltas} | {row[3] for row in deltas}
        named |= {row[2] for row in attributes} | {row[3] for row in attributes}
        named.discard(None)
        existing = set(ContentType.objects.filter(pk__in=named).values_list("pk", flat=True))
        assert named <= existing, f"deltas name missing content types {named - existing}"
        creations = {row[0] for row in deltas if row[1] == "Create"}
        for _, parent, type_id, _, content_id, name, old_value, new_value in attributes:
            if parent in creations:
                continue  # a creation records every field, None included
            model = ContentType.objects.get_for_id(type_id).model_class()
            field = _field(model, name)
            assert decode(field, old_value) != decode(field, new_value), (
                f"an update of {model.__name__} {content_id} records {name} unchanged: "
                f"{old_value!r} -> {new_value!r}"
            )
        if deltas:
            self.last_delta_id = max(row[0] for row in deltas)
        if attributes:
            self.last_attribute_id = max(row[0] for row in attributes)

    def teardown(self) -> None:
        """At the end of an example: every row and every point, by every kind of point."""
        if sys.exc_info()[0] is not None:
            return  # the step already failed: report that, not this
        for model in self.checked:
            self.check_latest(model, self.rows(model))
        previous = None
        for point in self.points:
            self.check_point(point)
            for model, pks in point.touched.items():
                for pk in self.rows(model, pks):
                    expected = point.reality[model].get(pk)
                    at = state_of(snapshot(model, pk, at=point.moment))
                    problem = differences(expected, at)
                    assert problem is None, f"{model.__name__} {pk!r} at {point.moment}: {problem}"
                    self.check_last_delta(model, pk, point.revision, expected)
                    if previous is not None:
                        self.check_diff(model, pk, previous, point)
            previous = point

    def check_last_delta(self, model, pk, revision, expected: State | None) -> None:
        """`delta=D` for the row's last delta in the revision gives the revision's state."""
        last = (
            get_object_delta_model()
            .objects.filter(revision=revision)
            .filter(pk__in=own_history(model, pk))
            .order_by("-pk")
            .first()
        )
        if last is None or last.action in ("Delete", "Event"):
            return
        problem = differences(expected, state_of(snapshot(model, pk, delta=last)))
        assert problem is None, f"{model.__name__} {pk!r} at delta {last.pk}: {problem}"

    def check_diff(self, model, pk, since: Point, until: Point) -> None:
        old, new = since.reality[model].get(pk), until.reality[model].get(pk)
        if old is None and new is None:
            return
        changed = {
            name for name in attnames(model) if (old or {}).get(name) != (new or {}).get(name)
        }
        if avoided("auto_now_only_save"):
            changed.discard("touched")
        try:
            recorded = set(diff(model, pk, since=since.revision, until=until.revision))
            if avoided("auto_now_only_save"):
                recorded.discard("touched")
        except HistoryNotFound:
            return  # created after `since`: covered by the snapshots
        assert recorded == changed, (
            f"diff of {model.__name__} {pk!r} between revisions {since.revision.pk} and "
            f"{until.revision.pk}: history says {sorted(recorded)}, the database {sorted(changed)}"
        )


def _field(model: type[models.Model], attname: str) -> models.Field:
    for field in model._meta.concrete_fields:
        if field.attname == attname:
            return field
    raise LookupError(f"{model.__name__} has no field {attname}")


def _attribution_check(model, pk, base: dict, assignments: list, saver: Any) -> Callable:
    """Who should be named on each field of the edit's Update delta, from the assignments.

    Each assignment is attributed to its actor; consecutive changes of one field by one
    actor collapse into one span; a span that ends where it started records nothing. The
    revision's actors are those and the saver (the object delta's actor); the values Django
    sets by itself (`auto_now`) are the system's, but do not make it a co-author.
    """
    current = dict(base)
    spans: dict[str, list[list]] = {}
    for name, value, actor in assignments:
        field = _field(model, name)
        value = field.to_python(value) if value is not None else None
        if value == current[name]:
            continue
        chain = spans.setdefault(name, [])
        if chain and chain[-1][0] == actor:
            chain[-1][2] = value
        else:
            chain.append([actor, current[name], value])
        current[name] = value
    expected: dict[str, list[tuple]] = {}
    for name, chain in spans.items():
        if current[name] == base[name]:
            continue
        old = base[name]
        for actor, _, new in chain:
            if new != old:
                expected.setdefault(name, []).append((_actor_ref(actor), old, new))
            old = new

    def check(revision) -> None:
        deltas = list(
            get_object_delta_model()
            .objects.filter(revision=revision)
            .filter(pk__in=own_history(model, pk))
            .order_by("pk")
        )
        if not expected:
            # Only an auto_now field moved (the row changed): an Update of that field alone,
            # the system's automatic value, which makes nobody an actor.
            for delta in deltas:
                assert delta.action == "Update", delta.action
                moved = list(delta.children.values_list("field_name", "automatic"))
                assert moved and all(name not in base and auto for name, auto in moved), (
                    f"an edit that changed nothing recorded {moved}"
                )
            return
        assert [d.action for d in deltas] == ["Update"], [d.action for d in deltas]
        recorded: dict[str, list[tuple]] = {}
        for attribute in deltas[0].children.order_by("pk"):
            if attribute.field_name not in base:  # auto_now: the system's, not checked here
                continue
            field = _field(model, attribute.field_name)
            recorded.setdefault(attribute.field_name, []).append(
                (
                    (attribute.actor_type_id, attribute.actor_id),
                    decode(field, attribute.old_value),
                    decode(field, attribute.new_value),
                )
            )
        assert recorded == expected, f"attribution: recorded {recorded}, expected {expected}"
        actors = {_actor_ref(actor) for actor in revision.get_actors()}
        authors = {_actor_ref(saver)} | {ref for spans in expected.values() for ref, _, _ in spans}
        if avoided("system_coauthor") and model is Doc:
            actors.discard((None, None))
            authors.discard((None, None))
        assert actors == authors, f"the revision's actors {actors}, expected {authors}"

    return check


def _actor_ref(actor: Any) -> tuple[int | None, str | None]:
    if actor is None:
        return (None, None)
    return (ContentType.objects.get_for_model(actor).pk, str(actor.pk))


def _forget_content_types(*models_: type[models.Model]) -> None:
    for model in models_:
        opts = model._meta
        ContentType.objects.filter(app_label=opts.app_label, model=opts.model_name).delete()
    ContentType.objects.clear_cache()
    registry.clear()  # revy keeps content type ids as long as Django's cache does


def _wipe() -> None:
    """Empty the models and the history tables, outside any context (nothing recorded), and
    restart their keys: every example then meets the same keys, so the same choices pick the
    same rows when hypothesis replays an example (to shrink it, or to explore from it)."""
    emptied = [ItemTag, TagLink, Membership, Doc, Stock, Shop, Place, Group, Item, Tag]
    emptied += [get_attribute_delta_model(), get_object_delta_model(), get_revision_model()]
    for model in emptied:
        model._base_manager.all().delete()
    with connection.cursor() as cursor:
        sequences = [
            sequence
            for model in emptied
            for sequence in connection.introspection.get_sequences(cursor, model._meta.db_table)
        ]
        for sql in connection.ops.sequence_reset_by_name_sql(no_style(), sequences):
            cursor.execute(sql)


def _save_unknown_field() -> None:
    Item(code="never saved").save(update_fields=["no_such_field"])


def _sliced_update() -> None:
    Item.objects.all()[:1].update(count=1)


def _joined_update() -> None:
    Doc.objects.update(owner__code="x")


def _inherited_bulk_create() -> None:
    Shop.objects.bulk_create([Shop(name="never saved")])


def _unknown_refresh() -> None:
    Item(pk=1, code="x").refresh_from_db(fields=["no_such_field"])


# Wrong usage, the exception Django answers it with before running any SQL, and the known
# bug (if any) that breaks it.
REFUSED: dict[str, tuple[type[Exception], Callable[[], None], str | None]] = {
    "save(update_fields=[unknown])": (ValueError, _save_unknown_field, None),
    "sliced update()": (TypeError, _sliced_update, "refused_in_atomic"),
    "update() of a joined field": (FieldDoesNotExist, _joined_update, None),
    "bulk_create() of a child model": (ValueError, _inherited_bulk_create, "refused_in_atomic"),
    "refresh_from_db(fields=[unknown])": (FieldDoesNotExist, _unknown_refresh, None),
}

# What an edit may assign, per model: attname -> (machine, data) -> value.
EDITABLE: dict[type[models.Model], dict[str, Callable[[HistoryMachine, Any], Any]]] = {
    Item: {
        "code": lambda m, data: m.fresh("n"),
        "count": lambda m, data: data.draw(st.integers(-3, 3)),
        "amount": lambda m, data: data.draw(amounts()),
        "data": lambda m, data: data.draw(json_documents),
    },
    Tag: {"label": lambda m, data: data.draw(labels)},
    Doc: {
        "title": lambda m, data: data.draw(labels),
        "owner_id": lambda m, data: m.pick(data, Item),
        "reviewer_id": lambda m, data: data.draw(st.none() | st.just(m.pick(data, Item))),
        "source_id": lambda m, data: data.draw(st.none() | st.just(m.pick(data, Item))),
        "editor_id": lambda m, data: data.draw(st.none() | st.just(m.pick(data, Item))),
    },
    Group: {"name": lambda m, data: data.draw(labels)},
    Membership: {"role": lambda m, data: data.draw(st.sampled_from(["member", "lead"]))},
    Place: {
        "name": lambda m, data: data.draw(labels),
        "rating": lambda m, data: data.draw(st.integers(0, 3)),
    },
    Shop: {
        "name": lambda m, data: data.draw(labels),
        "rating": lambda m, data: data.draw(st.integers(0, 3)),
        "open": lambda m, data: data.draw(st.booleans()),
    },
    Stock: {"quantity": lambda m, data: data.draw(st.integers(0, 3))},
}
EDITABLE[ProxyItem] = EDITABLE[Item]
# Names refresh_from_db(fields=...) also takes: relations, whose caches it clears.
RELATIONS: dict[type[models.Model], list[str]] = {
    Item: ["tags", "docs", "groups"],
    Doc: ["owner", "reviewer"],
    Tag: ["related", "items"],
}


def test_history_equals_reality():
    """Random sequences of writes by several actors; history must always equal reality."""
    users = [get_user_model().objects.create_user(name) for name in ("alice", "bob")]
    team = AuthGroup.objects.create(name="team")  # an actor that is not a user
    HistoryMachine.actors = [None, *users, team]
    chosen = settings.get_profile(f"revy-{PROFILE}")
    if EXAMPLES:
        chosen = settings(chosen, max_examples=int(EXAMPLES))
    STATS.clear()
    run_state_machine_as_test(HistoryMachine, settings=chosen)
    if os.environ.get("REVY_PROPERTY_STATS"):
        print("\n".join(f"{count:7} {what}" for what, count in sorted(STATS.items())))
