"""revy's settings checks: every problem is a system check with a stable id and a hint, and
runtime code that meets the same problem raises ImproperlyConfigured with the same text."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.apps.registry import Apps
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from revy.contrib.django import settings as revy_settings
from revy.contrib.django import utils
from revy.contrib.django.checks import check_settings

# The test database the checks may query: Django 6.1 checks every database by default, and the
# tests may use only those they declare.
DATABASES = ["default"]
ROOT = Path(__file__).resolve().parents[3]


def revy_messages() -> list[checks.CheckMessage]:
    messages = checks.run_checks(databases=DATABASES)
    return [m for m in messages if m.id and m.id.startswith("revy.")]


def only_message() -> checks.CheckMessage:
    messages = revy_messages()
    assert len(messages) == 1, [str(m) for m in messages]
    return messages[0]


# (setting, value, check id, text the message names, text of the hint, accessor that raises)
CASES = [
    (
        "REVY_EXCLUDED_MODELS",
        "shop.Product",
        "revy.E001",
        "REVY_EXCLUDED_MODELS is the string 'shop.Product', where a list or tuple is expected",
        "REVY_EXCLUDED_MODELS = ['shop.Product']",
        revy_settings.excluded_models,
    ),
    (
        "REVY_MODELS",
        "testapp",
        "revy.E001",
        "REVY_MODELS is the string 'testapp'",
        "['testapp']",
        revy_settings.included,
    ),
    (
        "REVY_EXCLUDED_FIELDS",
        "auth.User.last_login",
        "revy.E001",
        "REVY_EXCLUDED_FIELDS is the string 'auth.User.last_login'",
        "('auth.User.last_login',)",
        revy_settings.excluded_fields,
    ),
    (
        "REVY_MASKED_FIELDS",
        ["testapp.Secret.pin", 7],
        "revy.E001",
        "REVY_MASKED_FIELDS entry 7 is a int, not a string",
        "every entry as a string",
        revy_settings.masked_fields,
    ),
    (
        "REVY_AGGREGATES",
        [("testapp.Cylinder", "engine")],
        "revy.E001",
        "REVY_AGGREGATES must be a dict, not list",
        "Map model labels to foreign key names",
        revy_settings.aggregates,
    ),
    (
        "REVY_AGGREGATES",
        {"testapp.Cylinder": "engine"},
        "revy.E001",
        "REVY_AGGREGATES['testapp.Cylinder'] is the string 'engine'",
        "['engine']",
        revy_settings.aggregates,
    ),
    (
        "REVY_BATCH_SIZE",
        "100",
        "revy.E001",
        "REVY_BATCH_SIZE must be a positive integer, not str '100'",
        "REVY_BATCH_SIZE = 1000",
        revy_settings.batch_size,
    ),
    (
        "REVY_BATCH_SIZE",
        True,
        "revy.E001",
        "not bool True",
        "REVY_BATCH_SIZE = 1000",
        revy_settings.batch_size,
    ),
    (
        "REVY_MODELS",
        ["testapp.Nope"],
        "revy.E002",
        "REVY_MODELS names 'testapp.Nope', but the app 'testapp' has no model 'Nope'",
        "Did you mean 'Note'?",
        revy_settings.included,
    ),
    (
        "REVY_MODELS",
        ["testap"],
        "revy.E002",
        "REVY_MODELS names 'testap', which is neither '*', an installed app label",
        "Did you mean 'testapp'?",
        revy_settings.included,
    ),
    (
        "REVY_EXCLUDED_MODELS",
        ["shop.Product"],
        "revy.E002",
        "no installed app has the label 'shop'",
        "Add the app 'shop' to INSTALLED_APPS",
        revy_settings.excluded_models,
    ),
    (
        "REVY_MASKED_FIELDS",
        ["nope.Secret.pin"],
        "revy.E002",
        "REVY_MASKED_FIELDS names 'nope.Secret.pin', but no installed app has the label 'nope'",
        "INSTALLED_APPS",
        revy_settings.masked_fields,
    ),
    (
        "REVY_REVISION_MODEL",
        "testapp.NoSuchRevision",
        "revy.E002",
        "REVY_REVISION_MODEL names 'testapp.NoSuchRevision'",
        "Its models are:",
        utils.get_revision_model,
    ),
    (
        "REVY_EXCLUDED_MODELS",
        ["Product"],
        "revy.E003",
        "REVY_EXCLUDED_MODELS entry 'Product' is not a model label",
        "Use 'app_label.ModelName'",
        revy_settings.excluded_models,
    ),
    (
        "REVY_MASKED_FIELDS",
        ["password"],
        "revy.E003",
        "REVY_MASKED_FIELDS entry 'password' is not a field label",
        "Use 'app_label.ModelName.field'",
        revy_settings.masked_fields,
    ),
    (
        "REVY_OBJECT_DELTA_MODEL",
        "ObjectDelta",
        "revy.E003",
        "REVY_OBJECT_DELTA_MODEL = 'ObjectDelta' is not a model label",
        "'revy.ObjectDelta'",
        utils.get_object_delta_model,
    ),
    (
        "REVY_EXCLUDED_FIELDS",
        ["testapp.Book.nothing"],
        "revy.E004",
        "REVY_EXCLUDED_FIELDS names 'testapp.Book.nothing', but testapp.Book has no field",
        "Its fields are:",
        revy_settings.excluded_fields,
    ),
    (
        "REVY_MASKED_FIELDS",
        ["auth.User.pasword"],
        "revy.E004",
        "auth.User has no field 'pasword'",
        "Did you mean 'password'?",
        revy_settings.masked_fields,
    ),
    (
        "REVY_AGGREGATES",
        {"testapp.Book": ["autor"]},
        "revy.E004",
        "REVY_AGGREGATES names 'testapp.Book.autor'",
        "Did you mean 'author'?",
        revy_settings.aggregates,
    ),
    (
        "REVY_AGGREGATES",
        {"testapp.Book": ["title"]},
        "revy.E005",
        "REVY_AGGREGATES entry 'testapp.Book.title' is a CharField, not a ForeignKey",
        "name such a field",
        revy_settings.aggregates,
    ),
    (
        # A model that is not a history model (it fails on the first write otherwise).
        "REVY_OBJECT_DELTA_MODEL",
        "testapp.Book",
        "revy.E005",
        "REVY_OBJECT_DELTA_MODEL = 'testapp.Book' names a model that does not subclass "
        "revy.contrib.django.models.AbstractObjectDelta",
        "Subclass AbstractObjectDelta",
        utils.get_object_delta_model,
    ),
    (
        "REVY_BATCH_SIZE",
        0,
        "revy.E006",
        "REVY_BATCH_SIZE must be a positive integer, not 0",
        "1 or more",
        revy_settings.batch_size,
    ),
]


@pytest.mark.parametrize(
    ("setting", "value", "check_id", "msg", "hint", "accessor"),
    CASES,
    ids=[f"{case[2]}-{case[0]}-{index}" for index, case in enumerate(CASES)],
)
def test_a_bad_setting_is_one_system_check_error_and_the_same_improperly_configured(
    setting, value, check_id, msg, hint, accessor
):
    with override_settings(**{setting: value}):
        message = only_message()
        assert message.id == check_id
        assert message.level == checks.ERROR
        assert msg in message.msg
        assert hint in message.hint
        # A process started without the checks (a WSGI server) fails on first use, saying the same.
        with pytest.raises(ImproperlyConfigured) as excinfo:
            accessor()
        assert str(excinfo.value) == f"{message.msg} HINT: {message.hint} ({check_id})"
    assert revy_messages() == []
    accessor()  # the setting restored: no error


def test_a_non_boolean_track_outside_context_is_an_error_not_a_truthy_string():
    with override_settings(REVY_TRACK_OUTSIDE_CONTEXT="False"):
        [message] = check_settings()
        assert message.id == "revy.E001"
        assert message.msg == ("REVY_TRACK_OUTSIDE_CONTEXT must be True or False, not str 'False'.")
        # Read whenever a model instance is built, which Django's own checks do (auth builds
        # a user): `check` then stops at the first such instance, with the same text.
        with pytest.raises(ImproperlyConfigured) as excinfo:
            call_command("check", databases=DATABASES)
        assert str(excinfo.value) == f"{message.msg} HINT: {message.hint} (revy.E001)"


def test_call_command_check_reports_every_problem_at_once():
    with (
        override_settings(
            REVY_EXCLUDED_MODELS="shop.Product",
            REVY_BATCH_SIZE=0,
            REVY_MASKED_FIELDS=["password", "auth.User.pasword"],
        ),
        pytest.raises(SystemCheckError) as excinfo,
    ):
        call_command("check", databases=DATABASES)
    report = str(excinfo.value)
    for text in (
        "(revy.E001) REVY_EXCLUDED_MODELS is the string 'shop.Product'",
        "(revy.E003) REVY_MASKED_FIELDS entry 'password'",
        "(revy.E004) REVY_MASKED_FIELDS names 'auth.User.pasword'",
        "HINT: Did you mean 'password'?",
        "(revy.E006) REVY_BATCH_SIZE",
    ):
        assert text in report
    assert "System check identified 4 issues" in report


def test_the_test_settings_have_no_problems():
    assert revy_messages() == []
    revy_settings.validate()
    call_command("check", databases=DATABASES)


@given(st.text(max_size=40))
@settings(max_examples=60, deadline=None)
def test_any_string_where_a_list_is_expected_is_named_as_a_string_never_as_characters(value):
    for setting in ("REVY_MODELS", "REVY_EXCLUDED_MODELS", "REVY_EXCLUDED_FIELDS"):
        with override_settings(**{setting: value}):
            problems = revy_settings.problems()
        assert [problem.id for problem in problems] == ["revy.E001"]
        assert f"{setting} is the string {value!r}" in problems[0].msg


# Unknown settings --------------------------------------------------------------------------------


def test_an_unknown_revy_setting_is_a_warning_with_the_nearest_name():
    with override_settings(REVY_EXCLUDED_MODEL=["testapp.Untracked"]):
        message = only_message()
    assert message.id == "revy.W001"
    assert message.level == checks.WARNING
    assert message.msg == "REVY_EXCLUDED_MODEL is not a revy setting; it has no effect."
    assert message.hint == "Did you mean 'REVY_EXCLUDED_MODELS'?"
    revy_settings.validate()  # a warning, not an error
    call_command("check", databases=DATABASES)  # warnings do not stop `check`


def test_an_unknown_revy_setting_far_from_any_name_points_to_the_reference():
    with override_settings(REVY_COLOUR="blue"):
        message = only_message()
    assert message.id == "revy.W001"
    assert "settings reference" in message.hint


# django.contrib.contenttypes ---------------------------------------------------------------------


def test_without_contenttypes_the_app_registry_names_the_missing_app_and_the_fix():
    with pytest.raises(ImproperlyConfigured) as excinfo:
        Apps(installed_apps=["revy.contrib.django"])
    message = str(excinfo.value)
    assert "revy needs django.contrib.contenttypes" in message
    assert 'Add "django.contrib.contenttypes" to INSTALLED_APPS' in message
    assert "(revy.E007)" in message


# In a fresh process: what `manage.py check` prints -----------------------------------------------


def run_check(tmp_path: Path, settings_source: str) -> subprocess.CompletedProcess:
    (tmp_path / "check_settings.py").write_text(textwrap.dedent(settings_source))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "check_settings",
    }
    return subprocess.run(
        [sys.executable, "-m", "django", "check"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


def test_manage_py_check_reports_a_bad_setting_instead_of_crashing_at_start_up(tmp_path):
    result = run_check(
        tmp_path,
        """
        from tests.settings import *
        REVY_EXCLUDED_MODELS = "shop.Product"
        """,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        "(revy.E001) REVY_EXCLUDED_MODELS is the string 'shop.Product', where a list or tuple "
        "is expected." in result.stderr
    )
    assert "HINT: Write REVY_EXCLUDED_MODELS = ['shop.Product']" in result.stderr
    assert "'s'" not in result.stderr


def test_start_up_without_contenttypes_names_the_missing_app(tmp_path):
    result = run_check(
        tmp_path,
        """
        from tests.settings import *
        INSTALLED_APPS = ["revy.contrib.django"]
        """,
    )
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured: revy needs")
    assert "(revy.E007)" in last_line
