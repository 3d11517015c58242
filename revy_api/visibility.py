"""Who may see and restore which history: the policy REST, GraphQL and the admin share.

`VisibilityPolicy` is `revy.contrib.django.access.VisibilityPolicy` under its public name (the
admin, which lives in `revy`, asks the same class). By default a user sees a model's deltas
with its `view` (or `change`) permission, one row's history with that permission on the
model or on the row, and restores need `change`, `add` and `delete` on every row they touch;
superusers may do everything. Replace the policy with
`REVY_API["VISIBILITY_POLICY"] = "dotted.path.Policy"` (a subclass of `VisibilityPolicy`).
"""

from __future__ import annotations

from revy.contrib.django.access import (
    RESTORE_ACTIONS,
    RestoreForbidden,
    VisibilityPolicy,
    get_policy,
    in_queryset,
    last_recorded_state,
    parse_policy_class,
)

__all__ = [
    "RESTORE_ACTIONS",
    "RestoreForbidden",
    "VisibilityPolicy",
    "get_policy",
    "in_queryset",
    "last_recorded_state",
    "parse_policy_class",
]
