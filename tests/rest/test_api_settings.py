"""REVY_API: system checks of the `revy_api` app (revy_api.E001...), and the same problems met
at runtime by a process started without the checks: ImproperlyConfigured with the same text,
never a bare ImportError or KeyError."""

from __future__ import annotations

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from revy_api.checks import API_SETTINGS, api_problems
from revy_api.visibility import VisibilityPolicy, get_policy
from tests.factories import history_counts
from tests.testapp.models import Author

# The test database the checks may query: Django 6.1 checks every database by default, and the
# tests may use only those they declare.
DATABASES = ["default"]
RESOLVER = "tests.testapp.resolvers.member_organization"


def api_messages() -> list[checks.CheckMessage]:
    messages = checks.run_checks(databases=DATABASES)
    return [m for m in messages if m.id and m.id.startswith("revy_api.")]


def only_message() -> checks.CheckMessage:
    messages = api_messages()
    assert len(messages) == 1, [str(m) for m in messages]
    return messages[0]


def as_text(message: checks.CheckMessage) -> str:
    return f"{message.msg} HINT: {message.hint} ({message.id})"


class Policy(VisibilityPolicy):
    pass


CASES = [
    (
        "not a dict",
        "tests.testapp.resolvers.member_organization",
        "revy_api.E001",
        "REVY_API must be a dict, not str",
    ),
    (
        "resolver not a string",
        {"ORGANIZATION_RESOLVER": len},
        "revy_api.E001",
        "REVY_API['ORGANIZATION_RESOLVER'] must be a dotted path string, not the function",
    ),
    (
        "resolver module missing",
        {"ORGANIZATION_RESOLVER": "myproject.resolvers.member_organization"},
        "revy_api.E002",
        "REVY_API['ORGANIZATION_RESOLVER'] = 'myproject.resolvers.member_organization' cannot "
        "be imported: No module named 'myproject'.",
    ),
    (
        "resolver name missing",
        {"ORGANIZATION_RESOLVER": "tests.testapp.resolvers.member_organisation"},
        "revy_api.E002",
        'Module "tests.testapp.resolvers" does not define a "member_organisation" attribute',
    ),
    (
        "resolver not a function",
        {"ORGANIZATION_RESOLVER": "tests.settings.SECRET_KEY"},
        "revy_api.E003",
        "REVY_API['ORGANIZATION_RESOLVER'] = 'tests.settings.SECRET_KEY' is str 'revy-tests', "
        "not a function (request, value) -> organization or None.",
    ),
    (
        "policy missing",
        {"VISIBILITY_POLICY": "myproject.policies.Policy"},
        "revy_api.E002",
        "REVY_API['VISIBILITY_POLICY'] = 'myproject.policies.Policy' cannot be imported",
    ),
    (
        "policy not a VisibilityPolicy",
        {"VISIBILITY_POLICY": "django.contrib.auth.backends.ModelBackend"},
        "revy_api.E003",
        "is the class django.contrib.auth.backends.ModelBackend, not a subclass of "
        "revy_api.visibility.VisibilityPolicy.",
    ),
    (
        "require if-match not a bool",
        {"REQUIRE_IF_MATCH": "yes"},
        "revy_api.E001",
        "REVY_API['REQUIRE_IF_MATCH'] must be True or False, not str 'yes'.",
    ),
    (
        "limit not an int",
        {"GRAPHQL_MAX_DEPTH": "10"},
        "revy_api.E001",
        "REVY_API['GRAPHQL_MAX_DEPTH'] must be a positive integer or None, not str '10'.",
    ),
    (
        "limit out of range",
        {"GRAPHQL_MAX_TOKENS": 0},
        "revy_api.E004",
        "REVY_API['GRAPHQL_MAX_TOKENS'] must be a positive integer or None, not 0.",
    ),
]


@pytest.mark.parametrize(
    ("value", "check_id", "msg"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_a_bad_revy_api_is_one_system_check_error_with_a_hint(value, check_id, msg):
    with override_settings(REVY_API=value):
        message = only_message()
        with pytest.raises(SystemCheckError) as excinfo:
            call_command("check", databases=DATABASES)
    assert message.id == check_id
    assert message.level == checks.ERROR
    assert msg in message.msg
    assert message.hint
    assert f"({check_id}) {message.msg}" in str(excinfo.value)


def test_an_unknown_revy_api_key_is_a_warning_naming_the_nearest_key():
    with override_settings(REVY_API={"ORGANISATION_RESOLVER": RESOLVER}):
        message = only_message()
        call_command("check", databases=DATABASES)  # a warning does not stop `check`
    assert message.id == "revy_api.W001"
    assert message.level == checks.WARNING
    assert message.msg == (
        "REVY_API['ORGANISATION_RESOLVER'] is not a setting of revy_api; it has no effect."
    )
    assert message.hint == "Did you mean 'ORGANIZATION_RESOLVER'?"


def test_good_revy_api_values_pass():
    good = {
        "ORGANIZATION_RESOLVER": RESOLVER,
        "VISIBILITY_POLICY": f"{__name__}.Policy",
        "REQUIRE_IF_MATCH": True,
        "GRAPHQL_MAX_ALIASES": 15,
        "GRAPHQL_MAX_DEPTH": None,
        "GRAPHQL_MAX_TOKENS": 2000,
    }
    assert set(good) == set(API_SETTINGS)
    with override_settings(REVY_API=good):
        assert api_problems() == []
        assert type(get_policy()) is Policy
    with override_settings(REVY_API={"ORGANIZATION_RESOLVER": ""}):  # "" means unset
        assert api_problems() == []
    assert api_problems() == []


# At runtime: the same text as the check ----------------------------------------------------------


@override_settings(REVY_API={"ORGANIZATION_RESOLVER": "myproject.resolvers.member_organization"})
def test_a_resolver_that_does_not_import_raises_improperly_configured_on_the_header(
    editor_api, organization
):
    message = only_message()
    assert message.id == "revy_api.E002"
    # Requests without the header are served as usual.
    assert editor_api.get("/api/authors/").status_code == 200

    with pytest.raises(ImproperlyConfigured) as excinfo:
        editor_api.post(
            "/api/authors/",
            {"name": "Ann"},
            format="json",
            HTTP_X_PERFORM_AS_ORGANIZATION="acme",
        )

    assert str(excinfo.value) == as_text(message)
    assert not Author.objects.exists()
    assert history_counts() == (0, 0, 0)


@override_settings(REVY_API={"VISIBILITY_POLICY": "django.contrib.auth.backends.ModelBackend"})
def test_a_policy_of_the_wrong_kind_raises_improperly_configured_on_use(editor_api):
    message = only_message()
    assert message.id == "revy_api.E003"

    with pytest.raises(ImproperlyConfigured) as excinfo:
        editor_api.get("/api/revisions/")

    assert str(excinfo.value) == as_text(message)


@override_settings(REVY_API=["ORGANIZATION_RESOLVER", RESOLVER])
def test_a_revy_api_that_is_not_a_dict_raises_improperly_configured_not_attribute_error(
    editor_api, organization
):
    message = only_message()
    with pytest.raises(ImproperlyConfigured) as excinfo:
        editor_api.post(
            "/api/authors/", {"name": "Ann"}, format="json", HTTP_X_PERFORM_AS_ORGANIZATION="acme"
        )
    assert str(excinfo.value) == as_text(message)


def test_drf_s_default_schema_class_with_drf_spectacular_is_a_warning_naming_the_fix():
    # (DRF reloads its settings when REST_FRAMEWORK changes)
    with override_settings(REST_FRAMEWORK={}):
        message = only_message()
    assert message.id == "revy_api.W002"
    assert message.level == checks.WARNING
    assert "rest_framework.schemas.openapi.AutoSchema, not drf-spectacular's" in message.msg
    assert '"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"' in message.hint
    assert api_messages() == []
