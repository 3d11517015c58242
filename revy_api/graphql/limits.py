"""`QueryLimits`: bound what one GraphQL document may ask for, before anything runs.

Add it to the schema next to `RevisionContextExtension`::

    schema = strawberry.Schema(query=Query, mutation=Mutation,
                               extensions=[QueryLimits, RevisionContextExtension])

Three limits, read from `REVY_API` for each operation (so `override_settings` works), each
`None` to switch it off:

- `GRAPHQL_MAX_TOKENS` (default 2,000): the parser stops after that many tokens, so a huge
  document costs no more than a small one to refuse;
- `GRAPHQL_MAX_ALIASES` (default 15): a field asked for under many names is as costly as
  that many fields (1,000 aliases of `objectHistory` took seconds);
- `GRAPHQL_MAX_DEPTH` (default 15): how deeply fields may nest (introspection not counted).

A document over a limit is refused while it is parsed or validated, so no resolver runs and
no SQL is sent; the error's `extensions.code` is `QUERY_TOO_COMPLEX`. The defaults leave
room for every query of revy's own schema and for GraphiQL's introspection.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

from django.core.exceptions import ImproperlyConfigured
from graphql import GraphQLError, ValidationContext, ValidationRule
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator

from revy.contrib.django import settings as revy_settings
from revy_api.graphql.errors import QUERY_TOO_COMPLEX

__all__ = ["DEFAULT_LIMITS", "QueryLimits", "limit"]

DEFAULT_LIMITS = {
    "GRAPHQL_MAX_TOKENS": 2_000,
    "GRAPHQL_MAX_ALIASES": 15,
    "GRAPHQL_MAX_DEPTH": 15,
}


def limit(name: str) -> int | None:
    """Return the limit `name` of `REVY_API` (or its default); None means no limit."""
    value = revy_settings.api(name, DEFAULT_LIMITS[name])
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ImproperlyConfigured(
            f'REVY_API["{name}"] must be a positive integer or None, not {value!r}.'
        )
    return value


def _coded(rule: type[ValidationRule]) -> type[ValidationRule]:
    """`rule`, its errors coded `QUERY_TOO_COMPLEX` (strawberry's rules report bare errors)."""

    class Coded(rule):  # type: ignore[valid-type,misc]
        def __init__(self, context: ValidationContext) -> None:
            report = context.report_error

            def report_coded(error: GraphQLError) -> None:
                report(
                    GraphQLError(error.message, error.nodes, extensions={"code": QUERY_TOO_COMPLEX})
                )

            context.report_error = report_coded  # type: ignore[method-assign]
            try:
                super().__init__(context)
            finally:
                del context.report_error

    Coded.__name__ = f"Coded{rule.__name__}"
    return Coded


@cache
def _rules(max_aliases: int | None, max_depth: int | None) -> tuple[type[ValidationRule], ...]:
    # One set of rule classes per pair of limits, not one per operation.
    rules = []
    if max_aliases is not None:
        rules.append(_coded(alias_validator(max_aliases)))
    if max_depth is not None:
        rules.append(_coded(depth_validator(max_depth, None)))
    return tuple(rules)


class QueryLimits(SchemaExtension):
    """Refuse documents with too many tokens or aliases, or nested too deeply."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        max_tokens = limit("GRAPHQL_MAX_TOKENS")
        if max_tokens is not None:
            context.parse_options["max_tokens"] = max_tokens
        rules = _rules(limit("GRAPHQL_MAX_ALIASES"), limit("GRAPHQL_MAX_DEPTH"))
        context.validation_rules = (*context.validation_rules, *rules)
        yield
