"""Automation for revy: tests, lint, type check, benchmarks, demo and API contracts.

Run through the bootstrap, which needs nothing but Python 3.11+::

    python3 dev.py test                 # lint, types, tests on SQLite and PostgreSQL
    python3 dev.py nox -l               # list sessions
    python3 dev.py nox -s tests -- -k history -x

Sessions that need PostgreSQL start a throwaway server with ``scripts/postgres.sh``
and pass its settings to the tests in ``REVY_DB``/``PGHOST``/``PGPORT``/``PGUSER``/
``PGDATABASE``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import nox

nox.needs_version = ">=2024.4.15"

ROOT = Path(__file__).resolve().parent
POSTGRES_SH = str(ROOT / "scripts" / "postgres.sh")

# Extra packages for the test sessions: add new test dependencies here.
TEST_DEPS = [
    "pytest",
    "pytest-django",
    "pytest-xdist",
    "hypothesis",
    "hypothesis-graphql",
    "schemathesis",
    "pyyaml",
    "celery",  # the Celery recipe of Context.capture()/restore(), run in eager mode
]
# What the example project needs beyond revy[api]: GraphiQL's scripts as local static files.
EXAMPLE_DEPS = ["graphene-django-graphiql-static"]
# The browser tests drive Debian's chromium (/usr/bin/chromium) through Playwright, whose wheel
# ships its driver: no browser is ever downloaded (`playwright install` is never run).
BROWSER_DEPS = ["playwright", "pillow"]
# Pinned so that a new ruff release can't turn a green build red on its own.
LINT_DEPS = ["ruff==0.17.6"]
# The type checker and the stubs it reads Django and DRF through; pinned for the same reason.
TYPES_DEPS = ["mypy==2.4.1", "django-stubs==6.1.2", "djangorestframework-stubs==3.18.1"]
# What the `types` session checks: both packages, whole (migrations excluded, see
# pyproject.toml).
TYPED_PACKAGES = ["revy", "revy_api"]

SUPPORTED_PYTHONS = ["3.11", "3.12", "3.13"]
DATABASES = ["sqlite", "postgres"]

# (Python, Django requirement) pairs the test sessions run on.
DJANGO_MATRIX = [
    nox.param("3.11", "django>=5.2,<5.3", id="py3.11-django5.2"),
    nox.param("3.13", "django>=6.1,<6.2", id="py3.13-django6.1"),
]


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in {"", "0", "false", "no", "off"}


IN_CI = _truthy(os.environ.get("CI"))

nox.options.sessions = ["lint", "types", "tests", "tests_postgres", "tests_custom_history"]
# Locally: reuse virtualenvs, and skip (rather than fail) sessions whose Python is not
# installed. In CI: fresh virtualenvs, and a missing interpreter is an error.
nox.options.reuse_existing_virtualenvs = not IN_CI
nox.options.error_on_missing_interpreters = IN_CI


def _setup_pyenv() -> None:
    """Make pyenv's shims resolve python3.11, python3.12 and python3.13.

    pyenv's shim for ``python3.13`` only works when 3.13 is one of the selected pyenv
    versions (PYENV_VERSION, which pyenv itself also sets when `python3` was started
    through its shim). Append the newest installed patch release of each supported minor
    version that is not selected yet, keeping the caller's choice first. Does nothing
    without pyenv.
    """
    if shutil.which("pyenv") is None:
        return
    root = os.environ.get("PYENV_ROOT")
    if not root:
        try:
            root = subprocess.run(
                ["pyenv", "root"], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return
    versions_dir = Path(root) / "versions"
    if not versions_dir.is_dir():
        return
    installed = [p.name for p in versions_dir.iterdir() if re.fullmatch(r"3\.\d+\.\d+", p.name)]
    selected = [v for v in os.environ.get("PYENV_VERSION", "").split(":") if v]
    for minor in SUPPORTED_PYTHONS:
        if any(v == minor or v.startswith(minor + ".") for v in selected):
            continue
        matches = [v for v in installed if v.startswith(minor + ".")]
        if matches:
            selected.append(max(matches, key=lambda v: tuple(int(x) for x in v.split("."))))
    if selected:
        # e.g. "3.11.7:3.12.1:3.13.0"; the first one is what plain `python3` runs.
        os.environ["PYENV_VERSION"] = ":".join(selected)


_setup_pyenv()


def _postgres_env(session: nox.Session, *, durable: bool = False) -> dict[str, str | None]:
    """Start the throwaway PostgreSQL server and return the env vars pointing at it."""
    start_env = {"REVY_PG_DURABLE": "1" if durable else None}
    session.run(POSTGRES_SH, "start", external=True, env=start_env)
    out = subprocess.run([POSTGRES_SH, "env"], capture_output=True, text=True, check=True).stdout
    env: dict[str, str | None] = {}
    for line in out.splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            env[key] = value
    if env.get("REVY_DB") != "postgres":
        session.error(f"unexpected output from {POSTGRES_SH} env: {out!r}")
    return env


def _install_for_tests(session: nox.Session, django: str) -> None:
    session.install("-e", ".[api,postgres]", django, *TEST_DEPS, *EXAMPLE_DEPS)


def _pytest(session: nox.Session, env: dict[str, str | None], django: str) -> None:
    # The searches for counterexamples (fuzzers, the model-based history test) take minutes:
    # they run once per database, on the first Django version; the other sessions run the
    # rest of the suite. `-m search` in posargs runs them anywhere.
    first = django == DJANGO_MATRIX[0].args[1]
    _pytest_with(session, env, *(() if first else ("-m", "not search")))


def _pytest_with(session: nox.Session, env: dict[str, str | None], *args: str) -> None:
    # Two processes (pytest-xdist; each has its own test database): CI has two cores. `-n 0`
    # in posargs runs in one process.
    session.run(
        "python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-n",
        "2",
        *args,
        *session.posargs,
        env=env,
    )


@nox.session
@nox.parametrize(("python", "django"), DJANGO_MATRIX)
def tests(session: nox.Session, django: str) -> None:
    """Run the test suite on SQLite."""
    _install_for_tests(session, django)
    # REVY_DB unset: SQLite, even if the caller's shell has the PostgreSQL env loaded.
    _pytest(session, {"REVY_DB": None}, django)


@nox.session
@nox.parametrize(("python", "django"), DJANGO_MATRIX)
def tests_postgres(session: nox.Session, django: str) -> None:
    """Run the test suite on PostgreSQL (started with scripts/postgres.sh)."""
    _install_for_tests(session, django)
    # (with --install-only, session.run skips both the server start and pytest)
    _pytest(session, _postgres_env(session), django)


@nox.session(python="3.11")
def tests_custom_history(session: nox.Session) -> None:
    """Run the test suite on SQLite with custom history models (REVY_*_MODEL) swapped in."""
    _install_for_tests(session, "django>=5.2,<5.3")
    _pytest_with(
        session, {"REVY_DB": None}, "--ds=tests.settings_custom_history", "-m", "not search"
    )


# Django's own test suite with revy installed (scripts/django_suite.py): what runtests needs
# beyond Django (tracebacks from its parallel workers), and what some of the chosen apps'
# tests use when it is installed (they skip otherwise, the same with and without revy).
DJANGO_SUITE_DEPS = ["tblib", "pyyaml", "pillow"]


@nox.session
@nox.parametrize("db", DATABASES)
@nox.parametrize(("python", "django"), DJANGO_MATRIX)
def django_suite(session: nox.Session, django: str, db: str) -> None:
    """Run Django's own tests with and without revy installed and compare them per test.

    Arguments after -- go to scripts/django_suite.py: apps to run (default: its list) and
    its options, e.g. `-- --db sqlite basic update`; with `--db`, the sessions of the other
    database are skipped. Fails on any difference that is not a statement count.
    """
    args = list(session.posargs)
    chosen = None
    for i, arg in enumerate(args):
        if arg == "--db" and i + 1 < len(args):
            chosen = args[i + 1]
            del args[i : i + 2]
            break
        if arg.startswith("--db="):
            chosen = arg.split("=", 1)[1]
            del args[i]
            break
    if chosen is not None and chosen != db:
        session.skip(f"--db {chosen} given: this session runs on {db}")
    # revy as a user installs it: from a built wheel, not editable.
    session.install(".[postgres]", django, *DJANGO_SUITE_DEPS)
    env = _postgres_env(session) if db == "postgres" else {"REVY_DB": None}
    cache = Path(session.cache_dir) / "django-suite"
    session.run(
        "python",
        "scripts/django_suite.py",
        "--db",
        db,
        "--cache-dir",
        str(cache),
        *args,
        env=env,
    )


@nox.session
def browser(session: nox.Session) -> None:
    """Drive the example project in headless Chromium: admin history, Swagger UI, GraphiQL.

    Needs Debian's chromium (`apt-get install chromium`); fails, rather than skips, without it.
    """
    session.install("-e", ".[api]", *TEST_DEPS, *EXAMPLE_DEPS, *BROWSER_DEPS)
    session.run(
        "python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "tests/browser",
        "--ds=example.project.settings",
        *session.posargs,
        env={"REVY_DB": None, "REVY_REQUIRE_BROWSER": "1"},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Check the code with ruff (lint rules and formatting)."""
    session.install(*LINT_DEPS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    """Type-check revy/ and revy_api/ and the README's examples with mypy.

    mypy reads Django and DRF through django-stubs and djangorestframework-stubs (configured
    in pyproject.toml). tests/test_readme.py extracts the README's examples and checks them
    with mypy's API; REVY_REQUIRE_TYPES makes it fail, not skip, if a checker is missing.
    """
    session.install("-e", ".[api]", *TEST_DEPS, *TYPES_DEPS)
    session.run("mypy", *TYPED_PACKAGES)
    session.run(
        "python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "tests/test_readme.py",
        *session.posargs,
        env={"REVY_DB": None, "REVY_REQUIRE_TYPES": "1"},
    )


@nox.session
def benchmarks(session: nox.Session) -> None:
    """Run the benchmarks on SQLite and on PostgreSQL with default durability.

    Arguments after -- go to ``python -m benchmarks``; with ``--db sqlite`` or
    ``--db postgres`` among them, only that database is measured.
    """
    session.install("-e", ".[postgres]", "matplotlib")  # matplotlib: --plot
    args = list(session.posargs)
    chosen = None
    for i, arg in enumerate(args):
        if arg == "--db" and i + 1 < len(args):
            chosen = args[i + 1]
        elif arg.startswith("--db="):
            chosen = arg.split("=", 1)[1]
    runs = [(chosen, args)] if chosen else [(db, ["--db", db, *args]) for db in DATABASES]
    for db, db_args in runs:
        env = _postgres_env(session, durable=True) if db == "postgres" else {"REVY_DB": None}
        session.run("python", "-m", "benchmarks", *db_args, env=env)


@nox.session
def demo(session: nox.Session) -> None:
    """Run the example project: migrate, seed demo data and start the server."""
    session.install("-e", ".[api]", *EXAMPLE_DEPS)
    session.run("python", "example/manage.py", "demo", *session.posargs)


@nox.session
def schema(session: nox.Session) -> None:
    """Regenerate openapi/openapi.yaml and schema/schema.graphql."""
    session.install("-e", ".[api]", *EXAMPLE_DEPS)
    session.run("python", "example/manage.py", "export_contracts", *session.posargs)
