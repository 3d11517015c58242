"""The revision context: who acts, in which revision, why, and whether tracking is on.

`Context` is framework-free. Values live on an immutable stack of frames kept in one
`contextvars.ContextVar`, so every thread and every asyncio task sees its own values, and a
block's changes vanish when the block exits. Each frame is a tuple holding, per value, the head
of a linked list of assignments: pushing a block, setting, unsetting and reading a value are all
O(1) and copy a fixed number of slots.

Integrations (the Django app) attach their per-context state to the outermost block's `Scope`
and may register a boundary listener, called just before the actor, the attribute delta
description or the enabled flag changes, so that they can attribute pending changes to the actor
that made them.

`Context.capture()` turns the current values into a small JSON-able token and
`Context.restore(token)` continues them elsewhere (a task queue's worker, another thread). Plain
values (descriptions, the enabled flag) are handled here; model instances (the actor, the
revision) and the scope's request metadata belong to the integration, which registers a
`TokenHook` (`set_token_hook`) to turn them into references and back.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Protocol, Self, TypeVar

__all__ = [
    "Context",
    "Scope",
    "TokenHook",
    "add_boundary_listener",
    "current_scope",
    "enabled_scope",
    "set_token_hook",
]

# Frame layout: (parent, scope, *value heads). A value head is None (never assigned) or a
# tuple (value, previous head).
_PARENT = 0
_SCOPE = 1
_KEYS = (
    "actor",
    "revision",
    "revision_description",
    "object_delta_description",
    "attribute_delta_description",
    "deletion_description",
    "enabled",
)
_INDEX = {key: position + 2 for position, key in enumerate(_KEYS)}
_DEFAULTS = {
    "actor": None,
    "revision": None,
    "revision_description": "",
    "object_delta_description": "",
    "attribute_delta_description": "",
    "deletion_description": "",
    "enabled": True,
}
# A change to one of these ends the span of assignments attributed to the current actor.
_BOUNDARY_KEYS = frozenset({"actor", "attribute_delta_description", "enabled"})
_ACTOR = _INDEX["actor"]
_REVISION = _INDEX["revision"]
_ENABLED = _INDEX["enabled"]

# A frame: (parent frame or None, Scope, *value heads); a head: None or (value, previous head).
_Frame = tuple[Any, ...]
_Head = tuple[Any, Any] | None

_frame_var: contextvars.ContextVar[_Frame | None] = contextvars.ContextVar(
    "revy_context", default=None
)
_boundary_listeners: list[Callable[[Scope], None]] = []

F = TypeVar("F", bound=Callable[..., Any])

#: The version of the tokens `Context.capture()` writes.
TOKEN_VERSION = 1
_TOKEN_TEXT_KEYS = (
    "revision_description",
    "object_delta_description",
    "attribute_delta_description",
    "deletion_description",
)
# Keys of a token that only the integration's hook can read back.
_TOKEN_HOOK_KEYS = frozenset({"actor", "revisions", "metadata"})
_TOKEN_KEYS = frozenset({"revy", "enabled", *_TOKEN_TEXT_KEYS, *_TOKEN_HOOK_KEYS})


class TokenHook(Protocol):
    """How an integration captures and restores what `Context` cannot serialize itself."""

    def dump(self, values: dict[str, Any], scope: Scope) -> dict[str, Any]:
        """Return the JSON-able token entries for `values` (`actor` and `revision`, each
        present only when assigned) and for the scope's own state."""
        ...

    def load(self, token: Mapping[str, Any]) -> tuple[dict[str, Any], Callable[[Scope], None]]:
        """Return the context values a token names, and a function that puts the scope's
        state back when the restored block opens a new scope."""
        ...


_token_hook: TokenHook | None = None


def set_token_hook(hook: TokenHook | None) -> None:
    """Register the hook `Context.capture()` and `Context.restore()` delegate to."""
    global _token_hook
    _token_hook = hook


class Scope:
    """State shared by an outermost context block and every block nested in it.

    `revision` caches the revision created lazily for the block; `tracked`, `serial` and
    `extras` belong to integrations (the Django app keeps the instances it watches in `tracked`
    and counts its writes in `serial`, to tell what it knows of a row from stale knowledge).
    """

    __slots__ = ("extras", "revision", "serial", "tracked")

    def __init__(self) -> None:
        self.revision: Any = None
        self.tracked: list[Any] = []
        self.serial = 0
        self.extras: dict[Hashable, Any] = {}


class _Lazy:
    """A revision given as a zero-argument callable, called once on first use."""

    __slots__ = ("factory", "resolved", "value")

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory
        self.resolved = False
        self.value = None

    def get(self) -> Any:
        if not self.resolved:
            self.value = self.factory()
            self.resolved = True
        return self.value


class _Dynamic:
    """An actor given as a zero-argument callable, called each time the actor is read.

    Request integrations use it so that a user authenticated late in the request (token or
    JWT authentication inside the view) is the actor of every change.
    """

    __slots__ = ("factory",)

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory


def current_scope() -> Scope | None:
    """Return the scope of the outermost open block, or None outside any context."""
    frame = _frame_var.get()
    return None if frame is None else frame[_SCOPE]


def enabled_scope() -> Scope | None:
    """Return the outermost block's scope when tracking is enabled here, else None."""
    # Hot path: called for every row loaded and every instance built inside a context.
    frame = _frame_var.get()
    if frame is None:
        return None
    head = frame[_ENABLED]
    if head is None or head[0]:
        return frame[_SCOPE]
    return None


def add_boundary_listener(listener: Callable[[Scope], None]) -> None:
    """Call `listener(scope)` just before the actor, attribute description or enabled flag
    changes inside an open context. Registering the same listener twice has no effect."""
    if listener not in _boundary_listeners:
        _boundary_listeners.append(listener)


def _notify_boundary(frame: _Frame) -> None:
    scope = frame[_SCOPE]
    if scope.tracked:
        for listener in _boundary_listeners:
            listener(scope)


def _read(frame: _Frame | None, key: str) -> Any:
    if frame is None:
        return _DEFAULTS[key]
    head = frame[_INDEX[key]]
    if head is None:
        return _DEFAULTS[key]
    return head[0]


def _replace(frame: _Frame, index: int, head: _Head) -> _Frame:
    return (*frame[:index], head, *frame[index + 1 :])


def _require_frame(action: str) -> _Frame:
    frame = _frame_var.get()
    if frame is None:
        raise RuntimeError(
            f"Context.{action}() was called outside of a revy context. Open one first, "
            "for example `with Context(): ...` or the `@Context()` decorator."
        )
    return frame


def _wrap(key: str, value: Any) -> Any:
    if key == "revision" and callable(value) and not isinstance(value, _Lazy):
        return _Lazy(value)
    if key == "actor" and callable(value) and not isinstance(value, _Dynamic):
        return _Dynamic(value)
    return value


class Context:
    """A block of code whose model changes are recorded.

    Use an instance as a context manager (`with` or `async with`) or as a decorator on sync and
    async functions. Keyword arguments set values for the block::

        with Context(actor=user, revision_description="Imported from CSV"):
            ...

    Every value is also reachable through classmethods: `via_actor(user)` returns a block,
    `set_actor(user)` assigns inside the current block, `get_actor()` reads, `unset_actor()`
    forgets the nearest assignment and `reset_actor()` goes back to the default; the same for
    `revision`, `revision_description`, `object_delta_description`,
    `attribute_delta_description` and `deletion_description`.
    """

    __slots__ = ("_on_enter", "_values")

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - set(_KEYS)
        if unknown:
            raise TypeError(
                f"Unknown context value(s): {', '.join(sorted(unknown))}. "
                f"Valid names: {', '.join(_KEYS)}."
            )
        # A lazy revision is wrapped when a block is entered, not here: a decorated function or a
        # reused instance must create one revision per block, never share one across calls.
        self._values = values
        # Set by restore(): puts a captured scope's state back into a new scope.
        self._on_enter: Callable[[Scope], None] | None = None

    # Blocks -------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        parent = _frame_var.get()
        if parent is None:
            frame: list[Any] = [None, Scope(), *([None] * len(_KEYS))]
        else:
            if self._values.keys() & _BOUNDARY_KEYS:
                _notify_boundary(parent)
            frame = list(parent)
        frame[_PARENT] = parent
        for key, value in self._values.items():
            index = _INDEX[key]
            frame[index] = (_wrap(key, value), frame[index])
        _frame_var.set(tuple(frame))
        if parent is None and self._on_enter is not None:
            self._on_enter(frame[_SCOPE])
        return self

    def __exit__(self, *exc_info: Any) -> None:
        frame: _Frame = _frame_var.get()  # type: ignore[assignment]  # entered, so not None
        parent = frame[_PARENT]
        if parent is not None and any(
            frame[_INDEX[key]] is not parent[_INDEX[key]] for key in _BOUNDARY_KEYS
        ):
            _notify_boundary(frame)
        _frame_var.set(parent)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        self.__exit__(*exc_info)

    def __call__(self, function: F) -> F:
        """Run every call of `function` (sync or async) in a fresh block with these values."""
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._fresh():
                    return await function(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh():
                return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def _fresh(self) -> Context:
        """A new block with these values (each call of a decorated function gets its own)."""
        block = Context(**self._values)
        block._on_enter = self._on_enter
        return block

    # Carrying a context elsewhere ---------------------------------------------------------

    @classmethod
    def capture(cls) -> dict[str, Any]:
        """Return a small JSON-able token of the current context, to continue it elsewhere.

        The token holds the descriptions, the enabled flag and, through the integration (the
        Django app), a reference to the actor (content type and primary key), the revision
        written so far and the request metadata. Pass it to a task queue or a thread and open
        `Context.restore(token)` there. Outside any context the token is empty: restoring it
        opens a plain `Context()`.
        """
        token: dict[str, Any] = {"revy": TOKEN_VERSION}
        frame = _frame_var.get()
        if frame is None:
            return token
        for key in _TOKEN_TEXT_KEYS:
            if value := _read(frame, key):
                token[key] = value
        if frame[_ENABLED] is not None:
            token["enabled"] = bool(frame[_ENABLED][0])
        values: dict[str, Any] = {}
        if frame[_ACTOR] is not None:
            values["actor"] = cls.get_actor()
        revision_head = frame[_REVISION]
        if revision_head is not None:
            revision = revision_head[0]
            # A lazy revision not created yet is left alone: capturing writes nothing.
            if not isinstance(revision, _Lazy) or revision.resolved:
                values["revision"] = cls.get_revision()
        hook = _token_hook
        if hook is None:
            if any(value is not None for value in values.values()):
                raise RuntimeError(
                    "Context.capture() cannot refer to a model instance without an "
                    "integration: add revy.contrib.django to INSTALLED_APPS."
                )
            return token
        token.update(hook.dump(values, frame[_SCOPE]))
        return token

    @classmethod
    def restore(cls, token: Mapping[str, Any]) -> Context:
        """Return a block continuing the context `capture()` described in `token`.

        Use it as any block: `with Context.restore(token): ...`, or as a decorator. Its
        changes are recorded with the captured actor and descriptions; when it is the
        outermost block, in the captured revision if that still exists (else in a new one
        carrying the captured request metadata). Raises ValueError for a token that
        `capture()` did not write.
        """
        if not isinstance(token, Mapping) or token.get("revy") != TOKEN_VERSION:
            raise ValueError(
                f"Not a context token of this version of revy (expected {{'revy': "
                f"{TOKEN_VERSION}, ...}}, as Context.capture() returns it): {token!r}."
            )
        unknown = set(token) - _TOKEN_KEYS
        if unknown:
            raise ValueError(f"Unknown keys in a context token: {', '.join(sorted(unknown))}.")
        values: dict[str, Any] = {}
        for key in _TOKEN_TEXT_KEYS:
            if key in token:
                if not isinstance(token[key], str):
                    raise ValueError(f"{key} must be text in a context token.")
                values[key] = token[key]
        if "enabled" in token:
            if not isinstance(token["enabled"], bool):
                raise ValueError("enabled must be true or false in a context token.")
            values["enabled"] = token["enabled"]
        on_enter = None
        if _TOKEN_HOOK_KEYS & set(token):
            if _token_hook is None:
                raise RuntimeError(
                    "Context.restore() cannot resolve this token's references without an "
                    "integration: add revy.contrib.django to INSTALLED_APPS."
                )
            resolved, on_enter = _token_hook.load(token)
            values.update(resolved)
        block = cls(**values)
        block._on_enter = on_enter
        return block

    # Internals shared by the accessors ---------------------------------------------------

    @classmethod
    def _assign(cls, key: str, value: Any, action: str) -> None:
        frame = _require_frame(action)
        cls._move(frame, key, (value, frame[_INDEX[key]]))

    @staticmethod
    def _move(frame: _Frame, key: str, head: _Head) -> None:
        if key in _BOUNDARY_KEYS:
            _notify_boundary(frame)
        _frame_var.set(_replace(frame, _INDEX[key], head))

    @classmethod
    def _unset(cls, key: str, action: str) -> None:
        frame = _require_frame(action)
        head = frame[_INDEX[key]]
        if head is not None:
            cls._move(frame, key, head[1])

    # The values: via_X, set_X, get_X, unset_X and reset_X for each ------------------------------
    # Written out rather than generated, so that type checkers and editors see every name.

    # actor ----------------------------------------------------------------------------------------

    @classmethod
    def via_actor(cls, value: Any) -> Self:
        """Return a block in which the actor is `value`.

        `value` is a model instance, None for the system, or a zero-argument callable called each
        time the actor is read.
        """
        return cls(actor=value)

    @classmethod
    def set_actor(cls, value: Any) -> None:
        """Make the actor `value` until the current block exits."""
        cls._assign("actor", _wrap("actor", value), "set_actor")

    @classmethod
    def unset_actor(cls) -> None:
        """Drop the nearest assignment of actor (this or an outer block's)."""
        cls._unset("actor", "unset_actor")

    @classmethod
    def reset_actor(cls) -> None:
        """Make actor read as its default (None, the system) until the block exits."""
        cls._assign("actor", _DEFAULTS["actor"], "reset_actor")

    # revision -------------------------------------------------------------------------------------

    @classmethod
    def via_revision(cls, value: Any) -> Self:
        """Return a block in which the revision is `value`.

        `value` is a revision instance, or a zero-argument callable returning one, called once on
        first use.
        """
        return cls(revision=value)

    @classmethod
    def set_revision(cls, value: Any) -> None:
        """Make the revision `value` until the current block exits."""
        cls._assign("revision", _wrap("revision", value), "set_revision")

    @classmethod
    def unset_revision(cls) -> None:
        """Drop the nearest assignment of revision (this or an outer block's)."""
        cls._unset("revision", "unset_revision")

    @classmethod
    def reset_revision(cls) -> None:
        """Make revision read as its default (None) until the block exits."""
        cls._assign("revision", _DEFAULTS["revision"], "reset_revision")

    # revision_description -------------------------------------------------------------------------

    @classmethod
    def via_revision_description(cls, value: str) -> Self:
        """Return a block in which the revision's description is `value`."""
        return cls(revision_description=value)

    @classmethod
    def set_revision_description(cls, value: str) -> None:
        """Make the revision's description `value` until the current block exits."""
        cls._assign("revision_description", value, "set_revision_description")

    @classmethod
    def get_revision_description(cls) -> str:
        """Return the revision's description ("" when never set)."""
        return _read(_frame_var.get(), "revision_description")

    @classmethod
    def unset_revision_description(cls) -> None:
        """Drop the nearest assignment of revision_description (this or an outer block's)."""
        cls._unset("revision_description", "unset_revision_description")

    @classmethod
    def reset_revision_description(cls) -> None:
        """Make revision_description read as its default ("") until the block exits."""
        cls._assign(
            "revision_description", _DEFAULTS["revision_description"], "reset_revision_description"
        )

    # object_delta_description ---------------------------------------------------------------------

    @classmethod
    def via_object_delta_description(cls, value: str) -> Self:
        """Return a block in which the object deltas' description is `value`."""
        return cls(object_delta_description=value)

    @classmethod
    def set_object_delta_description(cls, value: str) -> None:
        """Make the object deltas' description `value` until the current block exits."""
        cls._assign("object_delta_description", value, "set_object_delta_description")

    @classmethod
    def get_object_delta_description(cls) -> str:
        """Return the object deltas' description ("" when never set)."""
        return _read(_frame_var.get(), "object_delta_description")

    @classmethod
    def unset_object_delta_description(cls) -> None:
        """Drop the nearest assignment of object_delta_description (this or an outer block's)."""
        cls._unset("object_delta_description", "unset_object_delta_description")

    @classmethod
    def reset_object_delta_description(cls) -> None:
        """Make object_delta_description read as its default ("") until the block exits."""
        cls._assign(
            "object_delta_description",
            _DEFAULTS["object_delta_description"],
            "reset_object_delta_description",
        )

    # attribute_delta_description ------------------------------------------------------------------

    @classmethod
    def via_attribute_delta_description(cls, value: str) -> Self:
        """Return a block in which the attribute deltas' description is `value`."""
        return cls(attribute_delta_description=value)

    @classmethod
    def set_attribute_delta_description(cls, value: str) -> None:
        """Make the attribute deltas' description `value` until the current block exits."""
        cls._assign("attribute_delta_description", value, "set_attribute_delta_description")

    @classmethod
    def get_attribute_delta_description(cls) -> str:
        """Return the attribute deltas' description ("" when never set)."""
        return _read(_frame_var.get(), "attribute_delta_description")

    @classmethod
    def unset_attribute_delta_description(cls) -> None:
        """Drop the nearest assignment of attribute_delta_description (this or an outer block's)."""
        cls._unset("attribute_delta_description", "unset_attribute_delta_description")

    @classmethod
    def reset_attribute_delta_description(cls) -> None:
        """Make attribute_delta_description read as its default ("") until the block exits."""
        cls._assign(
            "attribute_delta_description",
            _DEFAULTS["attribute_delta_description"],
            "reset_attribute_delta_description",
        )

    # deletion_description -------------------------------------------------------------------------

    @classmethod
    def via_deletion_description(cls, value: str) -> Self:
        """Return a block in which the deletion handlers' description is `value`."""
        return cls(deletion_description=value)

    @classmethod
    def set_deletion_description(cls, value: str) -> None:
        """Make the deletion handlers' description `value` until the current block exits."""
        cls._assign("deletion_description", value, "set_deletion_description")

    @classmethod
    def get_deletion_description(cls) -> str:
        """Return the deletion handlers' description ("" when never set)."""
        return _read(_frame_var.get(), "deletion_description")

    @classmethod
    def unset_deletion_description(cls) -> None:
        """Drop the nearest assignment of deletion_description (this or an outer block's)."""
        cls._unset("deletion_description", "unset_deletion_description")

    @classmethod
    def reset_deletion_description(cls) -> None:
        """Make deletion_description read as its default ("") until the block exits."""
        cls._assign(
            "deletion_description", _DEFAULTS["deletion_description"], "reset_deletion_description"
        )

    # Values with behaviour of their own ---------------------------------------------------

    @classmethod
    def via(cls, **values: Any) -> Self:
        """Return a block with several values at once: `Context.via(actor=u, revision=r)`."""
        return cls(**values)

    @classmethod
    def get_revision(cls) -> Any:
        """Return the current revision; a lazy one is created on first call and kept."""
        frame = _frame_var.get()
        if frame is None:
            return None
        head = frame[_REVISION]
        if head is None:
            return None
        value = head[0]
        return value.get() if isinstance(value, _Lazy) else value

    @classmethod
    def get_actor(cls) -> Any:
        """Return the current actor (None, the system, when never set).

        An actor given as a zero-argument callable is called on every read.
        """
        frame = _frame_var.get()
        if frame is None or frame[_ACTOR] is None:
            return None
        value = frame[_ACTOR][0]
        return value.factory() if type(value) is _Dynamic else value

    # Enabling and disabling ---------------------------------------------------------------

    @classmethod
    def is_enabled(cls) -> bool:
        """Return True inside an open context whose tracking is not disabled."""
        # Hot path: called for every row loaded and every save.
        frame = _frame_var.get()
        if frame is None:
            return False
        head = frame[_ENABLED]
        return head is None or head[0]

    @classmethod
    def is_disabled(cls) -> bool:
        """Return True outside any context or where tracking was disabled."""
        return not cls.is_enabled()

    @classmethod
    def is_active(cls) -> bool:
        """Return True inside any open context, enabled or not."""
        return _frame_var.get() is not None

    @classmethod
    def disable(cls) -> None:
        """Stop tracking until `enable()` or until the current block exits."""
        cls._assign("enabled", False, "disable")

    @classmethod
    def enable(cls) -> None:
        """Resume tracking until `disable()` or until the current block exits."""
        cls._assign("enabled", True, "enable")

    @classmethod
    def as_disabled(cls) -> Self:
        """Return a block in which tracking is off."""
        return cls(enabled=False)

    @classmethod
    def as_enabled(cls) -> Self:
        """Return a block in which tracking is on."""
        return cls(enabled=True)
