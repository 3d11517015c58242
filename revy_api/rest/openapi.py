"""The parts of revy's OpenAPI document that code cannot infer: precise parameters, the
rollback body, readable operation ids, examples and links.

`RevyAutoSchema` (`revy_api.rest.schema`) puts them in the document. They are what a client
generator or a fuzzer needs: every value the schema allows is one the API accepts (page sizes
from 1, model labels from the installed models, no NUL characters), the rollback body is a
`oneOf` of its three forms, and OpenAPI links lead from a created row to its history, from
there to a rollback and on to reverting that rollback.
"""

from __future__ import annotations

import re
from typing import Any

from django.apps import apps
from django.db import models
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter

from revy.contrib.django.models import Actions
from revy_api import inputs

__all__ = [
    "DELTAS_AFTER",
    "DIFF_PARAMETERS",
    "LINK_HEADER",
    "POINT_PARAMETERS",
    "REVERT_EXAMPLES",
    "ROLLBACK_EXAMPLES",
    "ROLLBACK_POINT",
    "WWW_AUTHENTICATE_HEADER",
    "filter_parameters",
    "links",
    "metadata_schema",
    "model_labels",
    "operation_id",
    "page_parameters",
]

# Text revy stores: no NUL characters (PostgreSQL refuses them), at most this long.
_NO_NUL = "^[^\\u0000]*$"


def _query(name: str, schema: dict[str, Any] | Any, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, schema, OpenApiParameter.QUERY, description=description)


def _text(max_length: int) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, "pattern": _NO_NUL}


def model_labels() -> list[str]:
    """`app_label.model` of every installed model (what `content_type` filters accept)."""
    return sorted(
        f"{model._meta.app_label}.{model._meta.model_name}"
        for model in apps.get_models(include_auto_created=True)
    )


def _actor_pattern() -> str:
    labels = "|".join(re.escape(label) for label in model_labels())
    return f"^(|{inputs.SYSTEM}|({labels}):[^\\u0000]{{1,{inputs.MAX_TEXT}}})$"


_ID = {"type": "integer", "format": "int64", "minimum": 1, "maximum": inputs.MAX_ID}
_MOMENT = {"type": "string", "format": "date-time"}
_OPTIONAL_MOMENT = {"anyOf": [_MOMENT, {"type": "string", "maxLength": 0}]}

#: A revision's next deltas (`deltas_next`): those after this delta id.
DELTAS_AFTER = _query(
    "deltas_after",
    {**_ID, "minimum": 0},
    "The deltas after this delta id (as `deltas_next` gives).",
)


def page_parameters() -> list[OpenApiParameter]:
    """`cursor` and `page_size` of `HistoryCursorPagination`."""
    return [
        _query("cursor", OpenApiTypes.STR, "The `next` or `previous` link's cursor."),
        _query(
            "page_size",
            {"type": "integer", "minimum": 1},
            "Results per page, from 1; larger than 500 is 500 (default 50).",
        ),
    ]


def filter_parameters() -> list[OpenApiParameter]:
    """The filters of `/deltas/` and `/revisions/`, as precisely as the API checks them.

    An empty value is no filter (what an HTML form sends for a field left empty).
    """
    return [
        _query(
            "actor",
            {"type": "string", "pattern": _actor_pattern()},
            "`app_label.model:pk` (e.g. `auth.user:5`) or `system`: changes that actor made "
            "or took part in.",
        ),
        _query(
            "content_type",
            {"type": "string", "enum": ["", *model_labels()]},
            "The changed row's model: `app_label.model`.",
        ),
        _query("object_id", _text(inputs.MAX_TEXT), "The changed row's primary key."),
        _query("action", {"type": "string", "enum": ["", *Actions.values]}, "The delta's action."),
        _query("event_type", _text(inputs.MAX_TEXT), "e.g. `ledger.transaction.updated`."),
        _query("since", _OPTIONAL_MOMENT, "Recorded at or after (ISO 8601; naive: UTC)."),
        _query("until", _OPTIONAL_MOMENT, "Recorded at or before (ISO 8601; naive: UTC)."),
        _query(
            "search",
            _text(inputs.MAX_SEARCH),
            "Text in the delta's or the revision's description, or in the event type.",
        ),
    ]


POINT_PARAMETERS = [
    _query("revision", _ID, "After all changes of this revision."),
    _query("delta", _ID, "Right after this object delta (a deletion: just before)."),
    _query("at", _MOMENT, "After every change recorded by then."),
]
_DIFF_POINT = {
    "anyOf": [
        {"type": "string", "pattern": "^[0-9]{1,19}$"},
        _MOMENT,
        {"type": "string", "maxLength": 0},
    ],
    "description": "A revision id, or an ISO 8601 datetime.",
}
DIFF_PARAMETERS = [
    _query(
        "since", _DIFF_POINT, "A revision id or an ISO datetime; omitted or empty: before history."
    ),
    _query(
        "until", _DIFF_POINT, "A revision id or an ISO datetime; omitted or empty: latest state."
    ),
]

# The rollback body: exactly one of its three forms.
ROLLBACK_POINT = {
    "oneOf": [
        {
            "type": "object",
            "title": "ToRevision",
            "properties": {"revision": {**_ID, "description": "A revision id."}},
            "required": ["revision"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "title": "ToDelta",
            "properties": {
                "delta": {
                    **_ID,
                    "description": "An object delta id; a deletion means the state just before it.",
                }
            },
            "required": ["delta"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "title": "ToMoment",
            "properties": {"at": {**_MOMENT, "description": "A moment (ISO 8601)."}},
            "required": ["at"],
            "additionalProperties": False,
        },
    ],
    "description": "The point to roll back to: one of `revision`, `delta` and `at`.",
}
ROLLBACK_EXAMPLES = {
    "ToRevision": {"summary": "To a revision", "value": {"revision": 12}},
    "ToDelta": {"summary": "Just before a deletion", "value": {"delta": 345}},
    "ToMoment": {"summary": "To a moment", "value": {"at": "2024-05-01T09:30:00Z"}},
}
REVERT_EXAMPLES = [
    OpenApiExample("Unless later changes conflict", value={"force": False}, request_only=True),
    OpenApiExample("Over later changes", value={"force": True}, request_only=True),
    OpenApiExample(
        "Reverted",
        value={"reverted": 12, "revision": 13},
        response_only=True,
        status_codes=["200"],
    ),
]

LINK_HEADER = {
    "schema": {"type": "string"},
    "description": 'RFC 8288 links to the other pages: `<url>; rel="next"`, `<url>; rel="prev"`.',
}
WWW_AUTHENTICATE_HEADER = {
    "schema": {"type": "string"},
    "description": "The authentication scheme to use (e.g. `Token`).",
}


def metadata_schema() -> dict[str, Any]:
    """The schema of `Revision.metadata` as the API records it."""
    return {
        "type": "object",
        "description": "Request facts: who acted (even as an organization) and the request id.",
        "properties": {
            "user": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "example": "auth.user"},
                    "id": {"type": "string", "example": "5"},
                },
                "required": ["type", "id"],
            },
            "request_id": {"type": "string", "example": "9f2c1d7e"},
        },
        "additionalProperties": True,
    }


# Operation ids --------------------------------------------------------------------------------

_VERBS = {
    "list": "list{plural}",
    "create": "create{name}",
    "retrieve": "get{name}",
    "update": "update{name}",
    "partial_update": "patch{name}",
    "destroy": "delete{name}",
    "history": "get{name}History",
    "snapshot": "get{name}Snapshot",
    "diff": "get{name}Diff",
    "rollback": "rollback{name}",
    "revert": "revert{name}",
}


def _camel(words: str) -> str:
    return "".join(word[:1].upper() + word[1:] for word in re.split(r"[\s_-]+", words) if word)


def operation_id(model: type[models.Model], action: str | None) -> str | None:
    """A readable operation id (`listCars`, `getCarHistory`, `revertRevision`); None if none."""
    template = _VERBS.get(action or "")
    if template is None:
        return None
    opts = model._meta
    return template.format(name=opts.object_name, plural=_camel(str(opts.verbose_name_plural)))


# Links ----------------------------------------------------------------------------------------


def links(
    model: type[models.Model],
    revision_model: type[models.Model],
    action: str | None,
    *,
    history: bool,
    id_in_body: bool,
) -> dict[str, dict[str, Any]]:
    """The OpenAPI links of an action's success response, for clients and stateful fuzzers.

    They walk a row's life: created -> read, its history -> rolled back -> the rollback
    reverted; a read's ETag -> a conditional update or delete.
    """

    def to(target_model: type[models.Model], target: str, **rest: Any) -> dict[str, Any]:
        return {"operationId": operation_id(target_model, target), **rest}

    own_id = {"id": "$request.path.id"}
    found: dict[str, dict[str, Any]] = {}
    if action == "create" and id_in_body:
        created = {"id": "$response.body#/id"}
        found["GetCreated"] = to(model, "retrieve", parameters=created)
        if history:
            found["GetCreatedHistory"] = to(model, "history", parameters=created)
    if action in ("create", "update", "partial_update", "destroy"):
        found["RevertRevision"] = to(
            revision_model,
            "revert",
            parameters={"id": "$response.header.X-Revision-Id"},
            description="Undo this request's changes.",
        )
    if action in ("retrieve", "update", "partial_update") and history:
        conditional = {**own_id, "header.If-Match": "$response.header.ETag"}
        found["PatchIfUnchanged"] = to(model, "partial_update", parameters=conditional)
        found["DeleteIfUnchanged"] = to(model, "destroy", parameters=conditional)
        found["GetHistory"] = to(model, "history", parameters=own_id)
    if action == "history":
        found["RollbackToLatestChange"] = to(
            model,
            "rollback",
            parameters=own_id,
            requestBody={"delta": "$response.body#/results/0/id"},
        )
        found["GetRevision"] = to(
            revision_model, "retrieve", parameters={"id": "$response.body#/results/0/revision"}
        )
    if action == "rollback":
        found["Get"] = to(model, "retrieve", parameters=own_id)
        found["RevertRollback"] = to(
            revision_model, "revert", parameters={"id": "$response.body#/revision"}
        )
    if action == "revert":
        found["GetReverted"] = to(
            revision_model, "retrieve", parameters={"id": "$response.body#/reverted"}
        )
        found["RevertTheRevert"] = to(
            revision_model, "revert", parameters={"id": "$response.body#/revision"}
        )
    if action == "list" and model is revision_model:
        found["GetFirst"] = to(model, "retrieve", parameters={"id": "$response.body#/results/0/id"})
    return found
