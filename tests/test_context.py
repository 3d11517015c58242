"""revy.Context: blocks, accessors, the precise semantics of the contract, isolation."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from revy import Context

# Every value with the generated via_X / set_X / get_X / unset_X / reset_X accessors, and its
# default.
VALUES = {
    "actor": None,
    "revision": None,
    "revision_description": "",
    "object_delta_description": "",
    "attribute_delta_description": "",
    "deletion_description": "",
}
VERBS = ("via", "set", "get", "unset", "reset")


def accessor(verb: str, key: str):
    return getattr(Context, f"{verb}_{key}")


class Thing:
    """An arbitrary object to use as a value (actors and revisions need not be models here)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Thing({self.name})"


def every_value() -> dict:
    return {key: accessor("get", key)() for key in VALUES} | {"enabled": Context.is_enabled()}


# The public surface -------------------------------------------------------------------------


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("key", VALUES)
def test_every_accessor_of_the_contract_is_a_classmethod(key, verb):
    assert isinstance(Context.__dict__.get(f"{verb}_{key}") or _inherited(key, verb), classmethod)


def _inherited(key, verb):
    for klass in Context.__mro__:
        if f"{verb}_{key}" in klass.__dict__:
            return klass.__dict__[f"{verb}_{key}"]
    return None


@pytest.mark.parametrize(
    "name",
    ["via", "disable", "enable", "is_disabled", "is_enabled", "as_disabled", "as_enabled"],
)
def test_enabling_methods_and_via_are_classmethods(name):
    assert isinstance(_inherited_name(name), classmethod)


def _inherited_name(name):
    for klass in Context.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


# Defaults and blocks ------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "default"), VALUES.items())
def test_get_outside_any_context_returns_the_default(key, default):
    assert accessor("get", key)() == default


def test_outside_any_context_tracking_is_disabled():
    assert Context.is_disabled() is True
    assert Context.is_enabled() is False


def test_an_empty_context_is_enabled_and_reads_defaults():
    with Context():
        assert Context.is_enabled() is True
        assert Context.is_disabled() is False
        assert every_value() == dict(VALUES, enabled=True)
    assert Context.is_disabled() is True


@pytest.mark.parametrize("key", VALUES)
def test_via_sets_the_value_for_its_block_only(key):
    value = Thing(key)
    with accessor("via", key)(value) as block:
        assert isinstance(block, Context)
        assert accessor("get", key)() is value
    assert accessor("get", key)() == VALUES[key]


def test_keywords_of_the_constructor_set_every_value_at_once():
    things = {key: Thing(key) for key in VALUES}
    with Context(**things):
        assert every_value() == dict(things, enabled=True)
    with Context.via(**things):
        assert every_value() == dict(things, enabled=True)
    assert every_value() == dict(VALUES, enabled=False)


def test_the_readme_usage_block_combines_two_vias():
    with (
        Context.via_actor(None),
        Context.via_revision_description("Detected by the system."),
    ):
        assert Context.is_enabled()
        assert Context.get_actor() is None
        assert Context.get_revision_description() == "Detected by the system."
    assert Context.get_revision_description() == ""


def test_unknown_keyword_raises_type_error_naming_it():
    with pytest.raises(TypeError, match="colour") as excinfo:
        Context(actor=None, colour="red")
    assert "actor" in str(excinfo.value)  # the message lists the valid names
    with pytest.raises(TypeError, match="user"):
        Context.via(user=1)


# set / unset / reset ------------------------------------------------------------------------


@pytest.mark.parametrize("key", VALUES)
def test_set_lasts_until_the_block_exits(key):
    first, second = Thing("first"), Thing("second")
    with accessor("via", key)(first):
        with Context():
            accessor("set", key)(second)
            assert accessor("get", key)() is second
            with Context():
                assert accessor("get", key)() is second
            assert accessor("get", key)() is second
        assert accessor("get", key)() is first


@pytest.mark.parametrize("key", VALUES)
def test_set_twice_in_one_block_keeps_the_last_value(key):
    first, second = Thing("first"), Thing("second")
    with Context():
        accessor("set", key)(first)
        accessor("set", key)(second)
        assert accessor("get", key)() is second
        accessor("unset", key)()
        assert accessor("get", key)() is first
        accessor("unset", key)()
        assert accessor("get", key)() == VALUES[key]


@pytest.mark.parametrize("key", VALUES)
def test_unset_forgets_the_nearest_assignment_even_from_an_enclosing_block(key):
    outer, inner = Thing("outer"), Thing("inner")
    with accessor("via", key)(outer), Context():
        accessor("unset", key)()
        assert accessor("get", key)() == VALUES[key]
        with accessor("via", key)(inner):
            accessor("unset", key)()
            assert accessor("get", key)() == VALUES[key]
        # Nothing the blocks did survives them: the enclosing assignment is back.
    with accessor("via", key)(outer):
        with accessor("via", key)(inner):
            accessor("unset", key)()
            assert accessor("get", key)() is outer
            accessor("unset", key)()
            assert accessor("get", key)() == VALUES[key]
        assert accessor("get", key)() is outer


@pytest.mark.parametrize("key", VALUES)
def test_unset_in_an_enclosing_blocks_frame_is_undone_when_the_inner_block_exits(key):
    outer = Thing("outer")
    with accessor("via", key)(outer):
        with Context():
            accessor("unset", key)()
            assert accessor("get", key)() == VALUES[key]
        assert accessor("get", key)() is outer


@pytest.mark.parametrize("key", VALUES)
def test_unset_of_a_value_never_assigned_changes_nothing(key):
    with Context():
        accessor("unset", key)()
        assert accessor("get", key)() == VALUES[key]


@pytest.mark.parametrize("key", VALUES)
def test_reset_reads_the_default_until_the_block_exits(key):
    outer = Thing("outer")
    with accessor("via", key)(outer):
        with Context():
            accessor("reset", key)()
            assert accessor("get", key)() == VALUES[key]
            with Context():
                assert accessor("get", key)() == VALUES[key]
            # Unsetting the reset forgets it: the enclosing assignment shows again.
            accessor("unset", key)()
            assert accessor("get", key)() is outer
            accessor("reset", key)()
        assert accessor("get", key)() is outer


def test_nothing_a_block_does_is_visible_after_it_exits():
    outer = {key: Thing(f"outer {key}") for key in VALUES}
    with Context(**outer):
        before = every_value()
        with Context(actor=Thing("inner actor")):
            Context.set_revision_description("inner")
            Context.unset_object_delta_description()
            Context.reset_attribute_delta_description()
            Context.set_deletion_description("inner deletion")
            Context.unset_actor()
            Context.set_revision(Thing("inner revision"))
            Context.disable()
            with Context():
                Context.enable()
                Context.set_actor(Thing("innermost"))
            assert Context.is_disabled()
            assert every_value() != before
        assert every_value() == before


def test_nested_contexts_inherit_every_value_of_the_enclosing_one():
    outer = {key: Thing(f"outer {key}") for key in VALUES}
    with Context(**outer):
        Context.disable()
        with Context(), Context():
            assert every_value() == dict(outer, enabled=False)
        with Context(actor=Thing("inner")):
            inherited = every_value()
            assert inherited["actor"].name == "inner"
            assert inherited["revision_description"] is outer["revision_description"]
            assert inherited["enabled"] is False


def test_an_exception_leaving_a_block_restores_the_enclosing_values():
    actor = Thing("outer")
    with Context(actor=actor):
        with pytest.raises(ZeroDivisionError), Context(actor=Thing("inner")):
            Context.set_revision_description("doomed")
            Context.disable()
            _ = 1 / 0
        assert Context.get_actor() is actor
        assert Context.get_revision_description() == ""
        assert Context.is_enabled()
    assert Context.is_disabled()


def test_one_context_instance_can_be_entered_again_and_nested_in_itself():
    actor = Thing("actor")
    block = Context(actor=actor)
    with block:
        Context.set_revision_description("first")
        with block:
            assert Context.get_actor() is actor
            assert Context.get_revision_description() == "first"
        assert Context.get_revision_description() == "first"
    with block:
        assert Context.get_revision_description() == ""
    assert Context.get_actor() is None


# Errors outside a context -------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["set", "unset", "reset"])
@pytest.mark.parametrize("key", VALUES)
def test_changing_a_value_outside_any_context_raises_a_clear_runtime_error(key, verb):
    method = accessor(verb, key)
    arguments = (Thing("value"),) if verb == "set" else ()
    with pytest.raises(RuntimeError) as excinfo:
        method(*arguments)
    message = str(excinfo.value)
    assert f"Context.{verb}_{key}()" in message
    assert "outside" in message
    assert "with Context()" in message  # it says how to fix it


@pytest.mark.parametrize("name", ["disable", "enable"])
def test_disable_and_enable_outside_any_context_raise_a_runtime_error_naming_them(name):
    with pytest.raises(RuntimeError, match=rf"Context\.{name}\(\)"):
        getattr(Context, name)()
    assert Context.is_disabled()


def test_reading_outside_a_context_never_raises():
    assert Context.get_revision() is None
    assert Context.get_actor() is None
    assert Context.is_disabled()


# Revisions ----------------------------------------------------------------------------------


def test_a_revision_instance_is_returned_as_is():
    revision = Thing("revision")
    with Context.via_revision(revision):
        assert Context.get_revision() is revision


def test_a_lazy_revision_is_created_once_on_first_read_and_kept():
    calls = []

    def create():
        calls.append(1)
        return Thing(f"revision {len(calls)}")

    with Context.via_revision(create):
        assert calls == []  # nothing happens until somebody asks for it
        revision = Context.get_revision()
        assert revision.name == "revision 1"
        assert Context.get_revision() is revision
        with Context(actor=Thing("inner")):
            assert Context.get_revision() is revision
        assert Context.get_revision() is revision
    assert calls == [1]
    assert Context.get_revision() is None


def test_a_lazy_revision_never_read_is_never_created():
    calls = []
    with Context(revision=lambda: calls.append(1)):
        pass
    assert calls == []


def test_set_revision_accepts_a_lazy_callable_too():
    calls = []
    with Context():
        Context.set_revision(lambda: calls.append(1) or Thing("lazy"))
        assert Context.get_revision().name == "lazy"
        assert Context.get_revision().name == "lazy"
        Context.unset_revision()
        assert Context.get_revision() is None
    assert calls == [1]


def test_a_lazy_revision_read_first_in_a_nested_block_is_kept_by_the_outer_block():
    calls = []
    with Context.via_revision(lambda: calls.append(1) or Thing(f"r{len(calls)}")):
        with Context():
            inner = Context.get_revision()
        assert Context.get_revision() is inner
    assert calls == [1]


def test_each_call_of_a_decorated_function_gets_its_own_lazy_revision():
    created = []

    @Context(revision=lambda: created.append(Thing(f"r{len(created)}")) or created[-1])
    def handle():
        return Context.get_revision()

    first, second = handle(), handle()
    assert first is not second
    assert [first, second] == created


def test_each_with_block_of_one_instance_gets_its_own_lazy_revision():
    created = []
    block = Context(revision=lambda: created.append(Thing("r")) or created[-1])
    with block:
        first = Context.get_revision()
    with block:
        second = Context.get_revision()
    assert first is not second
    assert len(created) == 2


# Enabling and disabling ---------------------------------------------------------------------


def test_disable_and_enable_inside_a_block_like_the_readme():
    @Context()
    def some_task():
        states = [Context.is_enabled()]
        Context.disable()
        states.append(Context.is_enabled())
        Context.enable()
        states.append(Context.is_enabled())
        return states

    assert some_task() == [True, False, True]
    assert Context.is_disabled()


def test_as_disabled_block_then_reenabled_like_the_readme():
    @Context()
    def some_task():
        with Context.as_disabled():
            inside = (Context.is_disabled(), Context.is_enabled())
        return inside, Context.is_enabled()

    assert some_task() == ((True, False), True)


def test_as_enabled_inside_a_disabled_block_enables_only_itself():
    with Context.as_disabled():
        assert Context.is_disabled()
        with Context.as_enabled():
            assert Context.is_enabled()
            with Context():
                assert Context.is_enabled()
        assert Context.is_disabled()


def test_disable_in_an_inner_block_does_not_leak_out():
    with Context():
        with Context():
            Context.disable()
            assert Context.is_disabled()
        assert Context.is_enabled()


def test_an_opened_context_is_enabled_even_inside_a_disabled_one_only_if_it_says_so():
    with Context.as_disabled(), Context(actor=Thing("x")):
        assert Context.is_disabled()


# Decorators and async -----------------------------------------------------------------------


def test_decorator_on_a_sync_function_opens_a_fresh_block_per_call():
    actor = Thing("decorated")

    @Context(actor=actor)
    def function(value):
        """Docstring kept."""
        inside = Context.get_actor()
        Context.set_revision_description(value)
        return inside, Context.get_revision_description()

    assert function("one") == (actor, "one")
    assert function("two") == (actor, "two")
    assert function.__name__ == "function"
    assert function.__doc__ == "Docstring kept."
    assert Context.get_actor() is None
    assert Context.is_disabled()


def test_decorator_on_a_sync_function_propagates_exceptions_and_restores_values():
    @Context(actor=Thing("a"))
    def failing():
        raise LookupError("boom")

    with Context(actor=None):
        with pytest.raises(LookupError, match="boom"):
            failing()
        assert Context.get_actor() is None
        assert Context.is_enabled()


def test_decorated_function_inherits_the_callers_values():
    caller = Thing("caller")

    @Context(revision_description="decorated")
    def function():
        return Context.get_actor(), Context.get_revision_description()

    with Context(actor=caller, revision_description="caller"):
        assert function() == (caller, "decorated")
        assert Context.get_revision_description() == "caller"


def test_decorator_on_an_async_function():
    actor = Thing("async")

    @Context(actor=actor)
    async def function(value):
        await asyncio.sleep(0)
        Context.set_revision_description(value)
        await asyncio.sleep(0)
        return Context.get_actor(), Context.get_revision_description(), Context.is_enabled()

    assert asyncio.iscoroutinefunction(function)
    assert asyncio.run(function("hello")) == (actor, "hello", True)
    assert function.__name__ == "function"
    assert Context.is_disabled()


def test_decorator_on_an_async_function_restores_values_after_an_exception():
    @Context(actor=Thing("inner"))
    async def failing():
        await asyncio.sleep(0)
        raise KeyError("gone")

    async def main():
        outer = Thing("outer")
        async with Context(actor=outer):
            with pytest.raises(KeyError):
                await failing()
            return Context.get_actor() is outer

    assert asyncio.run(main()) is True


def test_async_with_opens_a_block():
    actor = Thing("async actor")

    async def main():
        async with Context(actor=actor) as block:
            assert isinstance(block, Context)
            await asyncio.sleep(0)
            Context.set_deletion_description("async")
            async with Context.as_disabled():
                await asyncio.sleep(0)
                disabled = Context.is_disabled()
            seen = (Context.get_actor(), Context.get_deletion_description(), disabled)
        return seen, Context.get_actor(), Context.is_disabled()

    assert asyncio.run(main()) == ((actor, "async", True), None, True)


# Isolation ----------------------------------------------------------------------------------


def test_threads_never_see_each_others_values():
    count = 8
    barrier = threading.Barrier(count)
    errors: list[str] = []
    results: dict[int, list] = {}

    def worker(number: int) -> None:
        actor = Thing(f"actor {number}")
        seen = []
        try:
            barrier.wait(timeout=10)
            assert Context.is_disabled()
            with Context(actor=actor, revision_description=f"thread {number}"):
                for step in range(50):
                    barrier_free_pause(number, step)
                    Context.set_object_delta_description(f"{number}/{step}")
                    seen.append(
                        (
                            Context.get_actor(),
                            Context.get_revision_description(),
                            Context.get_object_delta_description(),
                        )
                    )
                    if step == 25:
                        barrier.wait(timeout=10)  # all threads are inside their contexts here
                    if Context.get_actor() is not actor:
                        errors.append(f"thread {number} saw {Context.get_actor()!r}")
            results[number] = seen
        except Exception as error:  # pragma: no cover - reported below
            errors.append(f"thread {number}: {error!r}")

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(results) == list(range(count))
    for number, seen in results.items():
        assert {entry[0].name for entry in seen} == {f"actor {number}"}
        assert {entry[1] for entry in seen} == {f"thread {number}"}
        assert [entry[2] for entry in seen] == [f"{number}/{step}" for step in range(50)]
    assert Context.is_disabled()


def barrier_free_pause(number: int, step: int) -> None:
    # Give other threads a chance to run between reads.
    if (number + step) % 3 == 0:
        threading.Event().wait(0.0005)


def test_a_thread_started_inside_a_context_does_not_see_it():
    seen = []
    with Context(actor=Thing("main")):
        thread = threading.Thread(
            target=lambda: seen.append((Context.get_actor(), Context.is_enabled()))
        )
        thread.start()
        thread.join()
    assert seen == [(None, False)]


def test_asyncio_tasks_never_see_each_others_values():
    count = 20

    async def task(number: int):
        actor = Thing(f"task {number}")
        assert Context.is_disabled()
        seen = []
        async with Context(actor=actor):
            for step in range(10):
                await asyncio.sleep(random.random() / 1000)
                Context.set_revision_description(f"{number}/{step}")
                await asyncio.sleep(0)
                seen.append((Context.get_actor().name, Context.get_revision_description()))
                with Context.via_attribute_delta_description(f"attr {number}"):
                    await asyncio.sleep(0)
                    description = Context.get_attribute_delta_description()
                    seen.append((Context.get_actor().name, description))
        assert Context.is_disabled()
        return number, seen

    async def main():
        return await asyncio.gather(*(task(number) for number in range(count)))

    for number, seen in asyncio.run(main()):
        assert len(seen) == 20
        assert {actor for actor, _ in seen} == {f"task {number}"}
        descriptions = [description for _, description in seen]
        assert descriptions[0::2] == [f"{number}/{step}" for step in range(10)]
        assert set(descriptions[1::2]) == {f"attr {number}"}


def test_a_task_inherits_the_values_of_its_creator_but_changes_do_not_leak_back():
    async def child():
        inherited = Context.get_actor().name
        Context.set_actor(Thing("child"))
        await asyncio.sleep(0)
        return inherited, Context.get_actor().name

    async def main():
        async with Context(actor=Thing("parent")):
            result = await asyncio.create_task(child())
            return result, Context.get_actor().name

    assert asyncio.run(main()) == (("parent", "child"), "parent")


def test_concurrent_decorated_coroutines_get_their_own_blocks():
    @Context()
    async def handle(number: int):
        Context.set_actor(Thing(f"request {number}"))
        for _ in range(5):
            await asyncio.sleep(random.random() / 1000)
            if Context.get_actor().name != f"request {number}":
                return False
        return True

    async def main():
        return await asyncio.gather(*(handle(number) for number in range(16)))

    assert all(asyncio.run(main()))
