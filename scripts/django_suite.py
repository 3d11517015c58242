"""Run Django's own test suite with and without revy, and compare the outcomes per test.

A history library must change nothing Django does. This script takes the ``tests/`` folder of
the sdist of exactly the installed Django version (downloaded with pip and cached), runs
Django's ``runtests.py`` on a set of apps twice, once as Django ships it and once with
``revy.contrib.django`` added to the apps runtests installs and ``REVY_TRACK_OUTSIDE_CONTEXT =
True`` (so every model of Django's test apps is tracked), and compares the outcome of every
test. It exits non-zero when a test that passes without revy does not pass with it, unless the
difference is only a statement count:

- classified automatically when the failure message shows it (``assertNumQueries``'s
  "N queries executed, M expected");
- listed, with its reason, in ``django_suite_allowlist.txt`` beside this script when it
  cannot be told from the message (tests that assert on captured SQL).

A test that fails without revy too is not a difference, and a test that passed without revy
but fails with it is run once more without revy before it counts (timing tests that fail now
and then are not revy's doing).

Usage (the nox session ``django_suite`` installs revy and runs this)::

    python scripts/django_suite.py --db sqlite                 # the default apps
    python scripts/django_suite.py --db postgres basic update  # some apps only
    python scripts/django_suite.py --db sqlite --json out.json # also write the outcomes

PostgreSQL is reached through ``PGHOST``, ``PGPORT``, ``PGUSER`` and ``PGPASSWORD`` (default
127.0.0.1:54329, user ``revy``: the server of ``scripts/postgres.sh``).

Only the standard library and Django are imported; revy is imported by Django's test run
itself, as an installed app, exactly as a project installs it.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import unittest
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent
ALLOWLIST = SCRIPTS_DIR / "django_suite_allowlist.txt"

# The apps of Django's test suite whose behaviour revy could change: saving, deleting,
# relations, inheritance, transactions, signals, bulk writes, serialization, querying.
DEFAULT_APPS = [
    "basic",
    "update",
    "update_only_fields",
    "bulk_create",
    "delete",
    "delete_regress",
    "many_to_many",
    "m2m_through",
    "m2m_regress",
    "m2m_through_regress",
    "save_delete_hooks",
    "signals",
    "model_inheritance",
    "model_inheritance_regress",
    "proxy_models",
    "one_to_one",
    "custom_pk",
    "composite_pk",
    "generic_relations",
    "transactions",
    "transaction_hooks",
    "get_or_create",
    "force_insert_update",
    "defer",
    "select_related",
    "model_fields",
    "serializers",
    "queries",
    "expressions",
    "multiple_database",
    "contenttypes_tests",
]

REVY_APP = "revy.contrib.django"
RESULTS_ENV = "REVY_DJANGO_SUITE_RESULTS"

# Outcomes a test can have, and which of them are a pass.
GOOD = ("pass", "skip", "xfail")
BAD = ("fail", "error", "xpass", "missing")
OUTCOMES = GOOD + BAD
# When a test reports several outcomes (subtests, errors in tearDown), the worst one wins.
SEVERITY = {name: rank for rank, name in enumerate(("pass", "xfail", "skip", *BAD))}

# assertNumQueries' failure message (django.test.testcases._AssertNumQueriesContext).
NUM_QUERIES = re.compile(r"^AssertionError: \d+ != \d+ : \d+ queries executed, \d+ expected$", re.M)
# The line naming the exception at the end of a traceback.
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Warning|Failure|Exit)\b")
# A setUpClass/setUpTestData failure is reported once, for the class, as unittest's _ErrorHolder.
ERROR_HOLDER = re.compile(r"^(setUpClass|tearDownClass|setUpModule|tearDownModule) \((.+)\)$")


# -- In the runtests process: record every test's outcome ---------------------------------


class _RecordingMixin:
    """Keep each test's outcome and failure text; mixed into the runner's result class.

    With ``--parallel`` the workers' events are replayed on the parent's result, so this
    sees every test whichever process ran it.
    """

    def _record(self, test, outcome: str, text: str | None = None) -> None:
        if not hasattr(self, "revy_outcomes"):
            self.revy_outcomes = {}
        entry = self.revy_outcomes.setdefault(test.id(), {"outcome": outcome, "messages": []})
        if SEVERITY[outcome] > SEVERITY[entry["outcome"]]:
            entry["outcome"] = outcome
        if text:
            entry["messages"].append(text)

    def _text(self, err, test) -> str:
        return self._exc_info_to_string(err, test)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "fail", self._text(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "error", self._text(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skip")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "xfail")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "xpass", "unexpected success")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is None:
            return
        outcome = "fail" if issubclass(err[0], test.failureException) else "error"
        self._record(test, outcome, f"{subtest}\n{self._text(err, subtest)}")


def _recording_runner():
    from django.test.runner import DiscoverRunner

    class RecordingRunner(DiscoverRunner):
        """Django's runner, writing every test's outcome to the JSON file named by the env."""

        def get_resultclass(self):
            base = super().get_resultclass() or unittest.TextTestResult
            return type("RecordingResult", (_RecordingMixin, base), {})

        def run_suite(self, suite, **kwargs):
            started = time.monotonic()
            result = super().run_suite(suite, **kwargs)
            data = {
                "tests": getattr(result, "revy_outcomes", {}),
                "ran": result.testsRun,
                "seconds": time.monotonic() - started,
            }
            Path(os.environ[RESULTS_ENV]).write_text(json.dumps(data))
            return result

    return RecordingRunner


def __getattr__(name: str):
    # TEST_RUNNER = "django_suite.RecordingRunner": built on first access, so that importing
    # this module needs no configured Django.
    if name == "RecordingRunner":
        return _recording_runner()
    raise AttributeError(name)


def _without_revy_migrations(runtests) -> None:
    """Create revy's tables from its models, as runtests does for contenttypes and auth.

    runtests turns the migrations of contenttypes, auth and sessions off
    (``MIGRATION_MODULES``), and revy's initial migration depends on contenttypes' second
    migration, which then does not exist. runtests sets ``MIGRATION_MODULES`` itself (the
    settings module cannot), so the setting is extended right after it does.
    """
    original = runtests.setup_collect_tests

    def setup_collect_tests(*args, **kwargs):
        from django.conf import settings

        result = original(*args, **kwargs)
        settings.MIGRATION_MODULES = {**settings.MIGRATION_MODULES, "revy": None}
        return result

    runtests.setup_collect_tests = setup_collect_tests


def run_runtests(tests_dir: str, with_revy: bool, argv: list[str]) -> None:
    """Run Django's ``runtests.py`` as its ``__main__`` block does, optionally with revy.

    runtests installs the apps of ``ALWAYS_INSTALLED_APPS`` and ignores ``INSTALLED_APPS``
    from the settings, so revy joins that list, as a project adds it to its own apps. The
    module is imported (not run as ``__main__``) so the list can be extended before its main
    block runs; the parallel runner forks its workers after that.
    """
    sys.path.insert(0, tests_dir)
    os.chdir(tests_dir)
    import multiprocessing

    # Workers must inherit the extended app list: fork (Linux's default before 3.14).
    multiprocessing.set_start_method("fork", force=True)
    import runtests  # Django's tests/runtests.py

    if with_revy and REVY_APP not in runtests.ALWAYS_INSTALLED_APPS:
        runtests.ALWAYS_INSTALLED_APPS.append(REVY_APP)
        _without_revy_migrations(runtests)
    source = Path(runtests.__file__).read_text()
    main_block = next(
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
    )
    code = compile(ast.Module(body=main_block.body, type_ignores=[]), runtests.__file__, "exec")
    sys.argv = [runtests.__file__, *argv]
    exec(code, vars(runtests))


# -- In the comparing process --------------------------------------------------------------


def say(message: str = "") -> None:
    print(message, flush=True)


def fetch_django_tests(cache_dir: Path) -> tuple[str, Path]:
    """Return the installed Django's version and the ``tests/`` folder of its sdist.

    The sdist is downloaded with pip (``--no-binary :all:``) into ``cache_dir`` and unpacked
    there once per version.
    """
    import django

    version = django.__version__
    target = cache_dir / f"django-{version}"
    tests = target / "tests"
    if (target / ".complete").exists():
        return version, tests
    download = cache_dir / "download"
    download.mkdir(parents=True, exist_ok=True)
    archive = next(download.glob(f"[Dd]jango-{version}.tar.gz"), None)
    if archive is None:
        say(f"Downloading the sdist of Django {version} ...")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                str(download),
                f"django=={version}",
            ],
            check=True,
        )
        archive = next(download.glob(f"[Dd]jango-{version}.tar.gz"))
    shutil.rmtree(target, ignore_errors=True)
    unpacking = cache_dir / f".unpacking-{version}"
    shutil.rmtree(unpacking, ignore_errors=True)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.split("/")[1:2] == ["tests"]]
        if not members:
            raise SystemExit(f"{archive} has no tests/ folder")
        tar.extractall(unpacking, members=members, filter="data")
    (unpacked,) = unpacking.iterdir()  # Django-5.2.x/
    target.mkdir(parents=True)
    (unpacked / "tests").rename(tests)
    shutil.rmtree(unpacking)
    (target / ".complete").touch()
    return version, tests


SETTINGS = {
    "sqlite": """
        DATABASES = {
            "default": {"ENGINE": "django.db.backends.sqlite3"},
            "other": {"ENGINE": "django.db.backends.sqlite3"},
        }
        """,
    "postgres": """
        import os

        def _database(alias):
            return {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": os.environ.get("PGHOST", "127.0.0.1"),
                "PORT": os.environ.get("PGPORT", "54329"),
                "USER": os.environ.get("PGUSER", "revy"),
                "PASSWORD": os.environ.get("PGPASSWORD", ""),
                "NAME": os.environ.get("PGDATABASE", "revy"),
                # One name per run, so that several runs can share the server.
                "TEST": {"NAME": f"test_django_suite_{os.environ['REVY_SUITE_RUN']}_{alias}"},
            }

        DATABASES = {"default": _database("default"), "other": _database("other")}
        """,
}

# What Django's own tests/test_sqlite.py sets besides the databases.
COMMON_SETTINGS = """
    SECRET_KEY = "django_tests_secret_key"
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
    USE_TZ = False
    TEST_RUNNER = "django_suite.RecordingRunner"
    """


def write_settings(work: Path, db: str) -> tuple[str, str]:
    """Write the settings modules of both runs; return their names (without, with revy)."""
    base = f"suite_settings_{db}"
    text = textwrap.dedent(SETTINGS[db]) + textwrap.dedent(COMMON_SETTINGS)
    (work / f"{base}.py").write_text(text)
    (work / f"{base}_revy.py").write_text(
        f"from {base} import *  # noqa: F403\n\n"
        "# Track every model of Django's test apps, with or without a revy Context.\n"
        "REVY_TRACK_OUTSIDE_CONTEXT = True\n"
    )
    return base, f"{base}_revy"


@dataclass
class Run:
    """One runtests run: its outcomes per test id, and how long it took."""

    label: str
    tests: dict[str, dict] = field(default_factory=dict)
    ran: int = 0
    seconds: float = 0.0

    def outcome(self, test_id: str) -> str:
        entry = self.tests.get(test_id)
        return entry["outcome"] if entry else "missing"

    def counts(self) -> Counter:
        return Counter(entry["outcome"] for entry in self.tests.values())


def run_suite(
    *,
    label: str,
    tests_dir: Path,
    work: Path,
    settings: str,
    with_revy: bool,
    labels: list[str],
    parallel: int,
) -> Run:
    """Run runtests in a child process; return its outcomes (its output goes to a log)."""
    slug = re.sub(r"\W+", "-", label)
    results = work / f"{slug}.json"
    log = work / f"{slug}.log"
    env = dict(os.environ)
    env[RESULTS_ENV] = str(results)
    env["REVY_SUITE_RUN"] = f"{os.getpid()}_{slug.replace('-', '_')}"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(work), str(SCRIPTS_DIR), *filter(None, [env.get("PYTHONPATH")])]
    )
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "runtests",
        str(tests_dir),
        "--revy" if with_revy else "--no-revy",
        "--",
        f"--settings={settings}",
        f"--parallel={parallel}",
        "--noinput",
        *labels,
    ]
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    seconds = time.monotonic() - started
    if not results.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise SystemExit(
            f"runtests ({label}) ended with exit code {process.returncode} and wrote no "
            f"results; the end of {log}:\n{tail}"
        )
    data = json.loads(results.read_text())
    return Run(label=label, tests=data["tests"], ran=data["ran"], seconds=seconds)


def fill_class_errors(run: Run, expected: set[str]) -> None:
    """Give the tests of a class whose setup failed that class's error.

    A failing ``setUpClass``/``setUpTestData`` is reported once, for the class, and none of
    its tests runs: they take the class's outcome and message.
    """
    holders = {}
    for test_id, entry in run.tests.items():
        match = ERROR_HOLDER.match(test_id)
        if match:
            holders[match.group(2)] = entry
    if not holders:
        return
    for test_id in expected - run.tests.keys():
        for prefix, entry in holders.items():
            if test_id.startswith(prefix + "."):
                run.tests[test_id] = {"outcome": entry["outcome"], "messages": entry["messages"]}
                break


def load_allowlist(path: Path, db: str) -> dict[str, str]:
    """Read ``test_id[@db][!Error]: reason`` lines (``#`` starts a comment).

    ``!Error`` marks a difference revy makes on purpose: the entry then excuses a failure or an
    error only when every message of the test names that exception (kept in the returned
    reason as ``!Error reason``).
    """
    allowed = {}
    if not path.exists():
        return allowed
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip() if line.lstrip().startswith("#") else line.strip()
        if not line:
            continue
        test_id, sep, reason = line.partition(":")
        test_id, bang, error = test_id.strip().partition("!")
        test_id, _, only_db = test_id.partition("@")
        if not sep or not reason.strip() or " " in test_id or (bang and not error):
            raise SystemExit(
                f"{path}:{number}: expected 'test_id[@db][!Error]: reason', got {line!r}"
            )
        if not only_db or only_db == db:
            allowed[test_id] = f"!{error} {reason.strip()}" if bang else reason.strip()
    return allowed


def by_design(entry: dict, reason: str) -> bool:
    """Whether an ``!Error`` allowlist entry excuses the test's outcome."""
    error = reason[1:].split(" ", 1)[0]
    return bool(entry["messages"]) and all(error in text for text in entry["messages"])


def is_statement_count(entry: dict) -> bool:
    """Whether every failure of the test is assertNumQueries's count mismatch."""
    return (
        entry["outcome"] == "fail"
        and bool(entry["messages"])
        and all(NUM_QUERIES.search(text) for text in entry["messages"])
    )


def _short_frame(row: str) -> str:
    """``File ".../site-packages/revy/x.py", line 9, in f`` -> ``revy/x.py:9 in f``."""
    match = re.match(r'\s*File "(.+)", line (\d+), in (.+)', row)
    if not match:
        return row.strip()
    path = re.sub(r"^.*/(site-packages|tests)/", "", match.group(1))
    return f"at {path}:{match.group(2)} in {match.group(3)}"


def failure_summary(text: str, lines: int = 6) -> list[str]:
    """The informative end of a traceback: the innermost frames' locations and the error."""
    rows = text.rstrip().splitlines()
    # assertNumQueries lists every captured query after the message: keep the message.
    for index, row in enumerate(rows):
        if row.startswith("Captured queries were:"):
            rows = rows[:index]
            break
    error_start = next(
        (i for i in range(len(rows) - 1, -1, -1) if rows[i] and not rows[i].startswith(" ")),
        len(rows) - 1,
    )
    frames = [_short_frame(row) for row in rows[:error_start] if row.lstrip().startswith("File ")]
    head = frames[-2:]
    body = [row[:200] for row in rows[error_start:]][: max(1, lines - len(head))]
    return head + body


def signature(text: str) -> str:
    """A key grouping failures of one cause: the error line, and revy's innermost frame."""
    rows = [row for row in text.rstrip().splitlines() if row.strip()]
    for index, row in enumerate(rows):
        if row.startswith("Captured queries were:"):
            rows = rows[:index]
            break
    # The exception's line (database errors add DETAIL/HINT lines after it).
    error = next(
        (row for row in reversed(rows) if EXCEPTION_LINE.match(row)),
        next((row for row in reversed(rows) if not row.startswith(" ")), "?"),
    )
    error = re.sub(r"\b\d+\b", "N", error)
    error = re.sub(r"'[^']*'", "'…'", error)
    error = re.sub(r'"[^"]*"', '"…"', error)[:160]
    revy_frames = [
        row.strip() for row in rows if row.lstrip().startswith("File ") and "/revy/" in row
    ]
    where = ""
    if revy_frames:
        match = re.search(r"/(revy/[^\"]+)\", line \d+, in (\S+)", revy_frames[-1])
        if match:
            where = f"  [{match.group(1)}:{match.group(2)}]"
    return error + where


@dataclass
class Difference:
    test_id: str
    before: str
    after: str
    messages: list[str]
    kind: str  # "statement count", "allowlisted", "by design", "flaky without revy", "unexplained"
    reason: str = ""


def compare(
    base: Run, revy: Run, allowlist: dict[str, str]
) -> tuple[list[Difference], list[str], list[str]]:
    """Return the differences, the tests failing in both runs, the tests failing only without."""
    differences, both, only_base = [], [], []
    for test_id in sorted(base.tests.keys() | revy.tests.keys()):
        if ERROR_HOLDER.match(test_id) and test_id not in base.tests:
            continue  # counted through the tests of its class
        before, after = base.outcome(test_id), revy.outcome(test_id)
        if after in GOOD:
            if before in BAD and before != "missing":
                only_base.append(test_id)
            continue
        if before in BAD:
            both.append(test_id)
            continue
        entry = revy.tests.get(test_id, {"outcome": after, "messages": []})
        if is_statement_count(entry):
            kind, reason = "statement count", "assertNumQueries"
        elif allowlist.get(test_id, "").startswith("!"):
            # A difference by design, recognised by the exception revy raises on purpose.
            if by_design(entry, allowlist[test_id]):
                kind, reason = "by design", allowlist[test_id].split(" ", 1)[1]
            else:
                kind, reason = "unexplained", ""
        elif test_id in allowlist and after == "fail":
            # Only a failed assertion: an error is never a mere statement count.
            kind, reason = "allowlisted", allowlist[test_id]
        else:
            kind, reason = "unexplained", ""
        differences.append(Difference(test_id, before, after, entry["messages"], kind, reason))
    return differences, both, only_base


def _table(runs: list[Run]) -> list[str]:
    header = f"{'':<16}{'tests':>7}" + "".join(f"{name:>8}" for name in OUTCOMES) + f"{'time':>9}"
    rows = [header]
    for run in runs:
        counts = run.counts()
        rows.append(
            f"{run.label:<16}{len(run.tests):>7}"
            + "".join(f"{counts.get(name, 0):>8}" for name in OUTCOMES)
            + f"{run.seconds:>8.0f}s"
        )
    return rows


def report(
    *,
    title: str,
    base: Run,
    revy: Run,
    differences: list[Difference],
    both: list[str],
    only_base: list[str],
    unused_allowlist: list[str],
    lines: int,
) -> None:
    say()
    say(title)
    for row in _table([base, revy]):
        say("  " + row)
    kinds = Counter(d.kind for d in differences)
    say()
    say(
        f"Failing without revy too (not a difference): {len(both)}; failing only without "
        f"revy: {len(only_base)}"
    )
    for test_id in both:
        say(f"  {test_id}: {base.outcome(test_id)} / {revy.outcome(test_id)}")
    say(
        f"Differences: {len(differences)} (statement counts {kinds['statement count']}, "
        f"allowlisted {kinds['allowlisted']}, by design {kinds['by design']}, flaky without revy "
        f"{kinds['flaky without revy']}, unexplained {kinds['unexplained']})"
    )
    for kind in (
        "statement count",
        "allowlisted",
        "by design",
        "flaky without revy",
        "unexplained",
    ):
        chosen = [d for d in differences if d.kind == kind]
        if not chosen:
            continue
        say()
        say(f"== {kind} ({len(chosen)})")
        for diff in chosen:
            reason = f"  [{diff.reason}]" if diff.reason else ""
            say(f"  {diff.test_id}: {diff.before} -> {diff.after}{reason}")
            if kind in ("unexplained", "flaky without revy"):
                for text in diff.messages[:1]:
                    for row in failure_summary(text, lines):
                        say("      " + row)
    unexplained = [d for d in differences if d.kind == "unexplained"]
    if unexplained:
        say()
        say("== unexplained differences by error and revy's innermost frame")
        groups = Counter(signature(d.messages[0]) if d.messages else d.after for d in unexplained)
        for key, count in groups.most_common():
            say(f"  {count:>5}  {key}")
    if unused_allowlist:
        say()
        say(f"Allowlist entries that matched no difference: {len(unused_allowlist)}")
        for test_id in unused_allowlist:
            say(f"  {test_id}")


def confirm_baseline(
    differences: list[Difference], rerun_base, limit: int
) -> tuple[list[Difference], Run | None]:
    """Run the tests that differ once more without revy; a failure there excuses revy."""
    suspects = [d for d in differences if d.kind == "unexplained" and d.after != "missing"]
    suspects = [d for d in suspects if not ERROR_HOLDER.match(d.test_id)]
    if not suspects or len(suspects) > limit:
        if suspects:
            say(f"({len(suspects)} differences: more than {limit}, not run again without revy)")
        return differences, None
    again = rerun_base([d.test_id for d in suspects])
    for diff in suspects:
        if again.outcome(diff.test_id) in BAD and again.outcome(diff.test_id) != "missing":
            diff.kind, diff.reason = "flaky without revy", "fails without revy when run again"
    return differences, again


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["runtests"]:
        # Internal: django_suite.py runtests TESTS_DIR --revy|--no-revy -- RUNTESTS_ARGS
        tests_dir, flag, separator, *rest = argv[1:]
        assert separator == "--" and flag in ("--revy", "--no-revy"), argv
        run_runtests(tests_dir, flag == "--revy", rest)
        return 0  # runtests exits by itself

    parser = argparse.ArgumentParser(
        description="Run Django's test suite with and without revy and compare per test.",
        epilog="With no apps, runs: " + " ".join(DEFAULT_APPS),
    )
    parser.add_argument("apps", nargs="*", help="apps or test labels of Django's tests/")
    parser.add_argument("--db", choices=sorted(SETTINGS), default="sqlite")
    parser.add_argument(
        "--parallel", type=int, default=min(os.cpu_count() or 1, 2), help="runtests processes"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "revy-django-suite",
        help="where the sdist is downloaded and unpacked",
    )
    parser.add_argument("--allowlist", type=Path, default=ALLOWLIST)
    parser.add_argument("--json", type=Path, help="write both runs' outcomes to this file")
    parser.add_argument("--lines", type=int, default=6, help="lines shown per failure")
    parser.add_argument(
        "--confirm-limit",
        type=int,
        default=400,
        help="run at most this many differing tests again without revy",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    parser.add_argument(
        "--only",
        choices=("both", "revy", "base"),
        default="both",
        help="run one configuration only (no comparison; for timing and debugging)",
    )
    options = parser.parse_args(argv)
    apps = options.apps or DEFAULT_APPS

    started = time.monotonic()
    version, tests_dir = fetch_django_tests(options.cache_dir.resolve())
    work = Path(tempfile.mkdtemp(prefix="revy-django-suite-"))
    base_settings, revy_settings = write_settings(work, options.db)
    title = (
        f"Django {version} test suite on {options.db}, {len(apps)} app(s) or label(s), "
        f"parallel {options.parallel}, Python {sys.version.split()[0]}"
    )
    say(title)
    say(f"Work folder: {work}")

    def run(label: str, with_revy: bool, labels: list[str], parallel: int) -> Run:
        say(f"Running {label} ...")
        result = run_suite(
            label=label,
            tests_dir=tests_dir,
            work=work,
            settings=revy_settings if with_revy else base_settings,
            with_revy=with_revy,
            labels=labels,
            parallel=parallel,
        )
        counts = result.counts()
        say(
            f"  {label}: {len(result.tests)} tests in {result.seconds:.0f}s ("
            + ", ".join(f"{counts[name]} {name}" for name in OUTCOMES if counts[name])
            + ")"
        )
        return result

    try:
        runs = {}
        if options.only in ("both", "base"):
            runs["base"] = run("without revy", False, apps, options.parallel)
        if options.only in ("both", "revy"):
            runs["revy"] = run("with revy", True, apps, options.parallel)
        if options.only != "both":
            (single,) = runs.values()
            for row in _table([single]):
                say("  " + row)
            if options.json:
                options.json.write_text(json.dumps({single.label: single.tests}, indent=1))
            return 0 if all(e["outcome"] in GOOD for e in single.tests.values()) else 1
        base, revy = runs["base"], runs["revy"]
        fill_class_errors(revy, set(base.tests))
        fill_class_errors(base, set(revy.tests))
        allowlist = load_allowlist(options.allowlist, options.db)
        differences, both, only_base = compare(base, revy, allowlist)
        differences, again = confirm_baseline(
            differences,
            lambda labels: run("without revy, again", False, labels, options.parallel),
            options.confirm_limit,
        )
        used = {d.test_id for d in differences if d.kind in ("allowlisted", "by design")}
        unused = sorted(set(allowlist) - used)
        report(
            title=title,
            base=base,
            revy=revy,
            differences=differences,
            both=both,
            only_base=only_base,
            unused_allowlist=unused,
            lines=options.lines,
        )
        if options.json:
            payload = {
                "django": version,
                "db": options.db,
                "apps": apps,
                "runs": {
                    run.label: {"seconds": run.seconds, "tests": run.tests}
                    for run in (base, revy, again)
                    if run is not None
                },
                "differences": [vars(d) for d in differences],
            }
            options.json.write_text(json.dumps(payload, indent=1))
        failing = sum(d.kind == "unexplained" for d in differences)
        say()
        timed = [run for run in (base, revy, again) if run is not None]
        say(
            "Durations: "
            + ", ".join(f"{run.label} {run.seconds:.0f}s" for run in timed)
            + f"; in all {time.monotonic() - started:.0f}s"
        )
        if failing:
            say(f"FAILED: {failing} test(s) behave differently with revy installed.")
            return 1
        say("OK: revy changes no test's outcome beyond statement counts.")
        return 0
    finally:
        if options.keep:
            say(f"(work folder kept: {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
