"""scripts/django_suite.py: how outcomes are recorded, compared and classified.

The script's runs of Django's suite are the nox session `django_suite`; these tests check
the parts that decide whether a difference fails it, on made-up outcomes.
"""

from __future__ import annotations

import importlib.util
import io
import sys
import unittest
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "django_suite.py"


def _load():
    spec = importlib.util.spec_from_file_location("django_suite", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("django_suite", module)
    spec.loader.exec_module(module)
    return module


suite = _load()

NUM_QUERIES_FAILURE = """Traceback (most recent call last):
  File "/x/tests/basic/tests.py", line 9, in test_save
    with self.assertNumQueries(1):
AssertionError: 6 != 1 : 6 queries executed, 1 expected
Captured queries were:
1. INSERT INTO "revy_revision" ("description") VALUES ('')
"""

POSTGRES_ERROR = (
    "Traceback (most recent call last):\n"
    '  File "/x/site-packages/revy/contrib/django/recorder.py", line 40, in write\n'
    "    cursor.execute(sql)\n"
    'django.db.utils.IntegrityError: insert or update on table "revy_objectdelta" violates '
    'foreign key constraint "fk_1"\n'
    'DETAIL:  Key (content_type_id)=(621) is not present in table "django_content_type".\n'
)


def run(label: str, **outcomes: str | tuple[str, str]) -> suite.Run:
    tests = {}
    for test_id, value in outcomes.items():
        outcome, message = value if isinstance(value, tuple) else (value, None)
        tests[test_id.replace("__", ".")] = {
            "outcome": outcome,
            "messages": [message] if message else [],
        }
    return suite.Run(label=label, tests=tests)


def classified(base: suite.Run, revy: suite.Run, allowlist=None) -> dict[str, str]:
    differences, _, _ = suite.compare(base, revy, allowlist or {})
    return {d.test_id: d.kind for d in differences}


def test_an_assert_num_queries_failure_is_a_statement_count():
    base = run("without", app__T__test_a="pass")
    revy = run("with", app__T__test_a=("fail", NUM_QUERIES_FAILURE))
    assert classified(base, revy) == {"app.T.test_a": "statement count"}


def test_a_statement_count_with_an_error_besides_is_unexplained():
    base = run("without", app__T__test_a="pass")
    revy = run("with", app__T__test_a=("error", NUM_QUERIES_FAILURE))
    revy.tests["app.T.test_a"]["messages"].append(POSTGRES_ERROR)
    assert classified(base, revy) == {"app.T.test_a": "unexplained"}


def test_the_allowlist_excuses_failed_assertions_only():
    base = run("without", app__T__test_a="pass", app__T__test_b="pass")
    revy = run(
        "with",
        app__T__test_a=("fail", "AssertionError: 'RETURNING' not found"),
        app__T__test_b=("error", POSTGRES_ERROR),
    )
    allowlist = {"app.T.test_a": "captured SQL", "app.T.test_b": "captured SQL"}
    assert classified(base, revy, allowlist) == {
        "app.T.test_a": "allowlisted",
        "app.T.test_b": "unexplained",
    }


def test_a_test_failing_without_revy_too_is_not_a_difference():
    base = run("without", app__T__test_a="fail", app__T__test_b="fail", app__T__test_c="skip")
    revy = run("with", app__T__test_a="error", app__T__test_b="pass", app__T__test_c="skip")
    differences, both, only_base = suite.compare(base, revy, {})
    assert (differences, both, only_base) == ([], ["app.T.test_a"], ["app.T.test_b"])


def test_a_failing_class_setup_gives_its_tests_its_error():
    base = run("without", app__T__test_a="pass", app__T__test_b="pass", app__U__test_c="pass")
    revy = run("with", app__U__test_c="pass")
    revy.tests["setUpClass (app.T)"] = {"outcome": "error", "messages": [POSTGRES_ERROR]}
    suite.fill_class_errors(revy, set(base.tests))
    assert classified(base, revy) == {"app.T.test_a": "unexplained", "app.T.test_b": "unexplained"}


def test_a_test_that_did_not_run_with_revy_is_a_difference():
    base = run("without", app__T__test_a="pass")
    revy = run("with")
    assert classified(base, revy) == {"app.T.test_a": "unexplained"}


def test_a_difference_that_fails_again_without_revy_is_flaky():
    base = run("without", app__T__test_a="pass", app__T__test_b="pass")
    revy = run("with", app__T__test_a=("fail", "x"), app__T__test_b=("fail", "x"))
    differences, _, _ = suite.compare(base, revy, {})
    asked = []

    def again(labels):
        asked.append(labels)
        return run("again", app__T__test_a="fail", app__T__test_b="pass")

    suite.confirm_baseline(differences, again, limit=10)
    assert asked == [["app.T.test_a", "app.T.test_b"]]
    assert {d.test_id: d.kind for d in differences} == {
        "app.T.test_a": "flaky without revy",
        "app.T.test_b": "unexplained",
    }


def test_allowlist_lines(tmp_path):
    path = tmp_path / "allowlist.txt"
    path.write_text(
        "# comment\n\n"
        "app.T.test_a: asserts on captured SQL: the last statement\n"
        "app.T.test_b@postgres: only there\n"
    )
    assert suite.load_allowlist(path, "sqlite") == {
        "app.T.test_a": "asserts on captured SQL: the last statement"
    }
    assert set(suite.load_allowlist(path, "postgres")) == {"app.T.test_a", "app.T.test_b"}
    path.write_text("app.T.test_a\n")
    with pytest.raises(SystemExit, match="expected 'test_id"):
        suite.load_allowlist(path, "sqlite")


def test_the_checked_in_allowlist_parses():
    assert suite.load_allowlist(suite.ALLOWLIST, "sqlite")


def test_signature_names_the_exception_and_revy_s_frame():
    assert suite.signature(POSTGRES_ERROR) == (
        'django.db.utils.IntegrityError: insert or update on table "…" violates foreign key '
        'constraint "…"  [revy/contrib/django/recorder.py:write]'
    )
    assert suite.signature(NUM_QUERIES_FAILURE) == (
        "AssertionError: N != N : N queries executed, N expected"
    )


class _Sample(unittest.TestCase):
    __test__ = False  # run by the test below, not collected by pytest

    def test_pass(self):
        pass

    def test_fail(self):
        self.assertEqual(1, 2)

    def test_error(self):
        raise KeyError("x")

    @unittest.skip("no")
    def test_skip(self):
        pass

    @unittest.expectedFailure
    def test_xfail(self):
        self.assertEqual(1, 2)

    def test_subtests(self):
        for value in (1, 2):
            with self.subTest(value=value):
                self.assertEqual(value, 1)


def test_the_result_class_records_every_outcome():
    result_class = type("Result", (suite._RecordingMixin, unittest.TextTestResult), {})
    result = result_class(io.StringIO(), descriptions=False, verbosity=0)
    unittest.defaultTestLoader.loadTestsFromTestCase(_Sample).run(result)
    outcomes = {
        test_id.rsplit(".", 1)[1]: entry["outcome"]
        for test_id, entry in result.revy_outcomes.items()
    }
    assert outcomes == {
        "test_pass": "pass",
        "test_fail": "fail",
        "test_error": "error",
        "test_skip": "skip",
        "test_xfail": "xfail",
        "test_subtests": "fail",
    }
    (subtests,) = (e for t, e in result.revy_outcomes.items() if t.endswith("test_subtests"))
    assert len(subtests["messages"]) == 1 and "value=2" in subtests["messages"][0]


def test_a_by_design_entry_excuses_only_the_exception_it_names(tmp_path):
    path = tmp_path / "allowlist.txt"
    path.write_text("app.T.test_a!HistoryProtectedError: revy keeps history\n")
    allowlist = suite.load_allowlist(path, "sqlite")
    base = suite.Run("without revy")
    revy = suite.Run("with revy")
    base.tests["app.T.test_a"] = {"outcome": "ok", "messages": []}
    revy.tests["app.T.test_a"] = {
        "outcome": "error",
        "messages": ["Traceback...\nHistoryProtectedError: Cannot delete the content type"],
    }
    (difference,), _, _ = suite.compare(base, revy, allowlist)
    assert (difference.kind, difference.reason) == ("by design", "revy keeps history")
    revy.tests["app.T.test_a"]["messages"] = ["Traceback...\nKeyError: 'x'"]
    (difference,), _, _ = suite.compare(base, revy, allowlist)
    assert difference.kind == "unexplained"
