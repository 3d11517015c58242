#!/usr/bin/env python3
"""Development bootstrap for revy. Needs only Python 3.11+ (standard library).

    python3 dev.py demo [ARGS...]           run the example project (nox session `demo`)
    python3 dev.py test [NOXOPTS] [-- PYTEST_ARGS]
                                            lint, type check, tests on SQLite and
                                            PostgreSQL (nox sessions lint, types, tests,
                                            tests_postgres, tests_custom_history); stops
                                            the PostgreSQL server afterwards if this run
                                            started it
    python3 dev.py lint                     ruff check + format check
    python3 dev.py schema                   regenerate openapi/openapi.yaml and
                                            schema/schema.graphql
    python3 dev.py bench [ARGS...]          benchmarks (nox session `benchmarks`)
    python3 dev.py postgres start|stop|status|env
                                            the throwaway PostgreSQL (scripts/postgres.sh)
    python3 dev.py nox [NOX ARGS...]        run nox itself, e.g. `python3 dev.py nox -l`

The first run creates .venv/ with `python3 -m venv` and installs nox into it; nox then
makes a virtualenv per session under .nox/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
POSTGRES_SH = ROOT / "scripts" / "postgres.sh"
# Bump to make every checkout reinstall nox on its next run.
NOX_REQUIREMENT = "nox>=2024.4.15"
STAMP = VENV / ".dev-py-requirements"

DEFAULT_TEST_SESSIONS = ["lint", "types", "tests", "tests_postgres", "tests_custom_history"]


def say(message: str) -> None:
    print(f"dev.py: {message}", flush=True)


def fail(message: str) -> None:
    print(f"dev.py: error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def venv_bin(name: str) -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / f"{name}.exe"
    return VENV / "bin" / name


def run(cmd: list[str]) -> None:
    say("running: " + " ".join(str(c) for c in cmd))
    result = subprocess.run(cmd, cwd=ROOT)
    if result.returncode != 0:
        fail(f"command failed with exit code {result.returncode}: {cmd[0]}")


def check_python() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 (a clear message on an old Python)
        fail(f"Python 3.11 or newer is needed, this is {sys.version.split()[0]} ({sys.executable})")


def check_venv_support() -> None:
    missing = []
    for module in ("venv", "ensurepip"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        fail(
            f"this Python ({sys.executable}) lacks the {' and '.join(missing)} module(s), "
            "needed to create .venv/.\n"
            f"  On Debian/Ubuntu: sudo apt-get install python3-venv  (or python{version}-venv)"
        )


def ensure_venv() -> Path:
    """Create .venv/ and install nox into it, if not done yet. Returns the nox path."""
    python = venv_bin("python")
    if not python.exists():
        check_venv_support()
        if VENV.exists():
            say(f"{VENV} is incomplete: recreating it")
            clear = ["--clear"]
        else:
            clear = []
        say(f"creating virtualenv {VENV} with {sys.executable}")
        run([sys.executable, "-m", "venv", *clear, str(VENV)])
    nox = venv_bin("nox")
    wanted = NOX_REQUIREMENT + "\n"
    if nox.exists() and STAMP.exists() and STAMP.read_text() == wanted:
        return nox
    say(f"installing {NOX_REQUIREMENT} into {VENV}")
    run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            NOX_REQUIREMENT,
        ]
    )
    if not nox.exists():
        fail(f"installing nox did not create {nox}")
    STAMP.write_text(wanted)
    return nox


def exec_nox(args: list[str]) -> None:
    nox = ensure_venv()
    cmd = [str(nox), "--noxfile", str(ROOT / "noxfile.py"), *args]
    say("running: " + " ".join(cmd))
    sys.stdout.flush()
    os.chdir(ROOT)
    if os.name == "nt":
        sys.exit(subprocess.run(cmd).returncode)
    os.execv(cmd[0], cmd)


def postgres_running() -> bool:
    """Return True when this checkout's throwaway PostgreSQL server runs."""
    status = subprocess.run(["bash", str(POSTGRES_SH), "status"], cwd=ROOT, capture_output=True)
    return status.returncode == 0


def run_tests(args: list[str]) -> None:
    """Run nox with `args`; stop the PostgreSQL server afterwards if nox started it."""
    was_running = postgres_running()
    nox = ensure_venv()
    cmd = [str(nox), "--noxfile", str(ROOT / "noxfile.py"), *args]
    say("running: " + " ".join(cmd))
    try:
        returncode = subprocess.run(cmd, cwd=ROOT).returncode
    except KeyboardInterrupt:
        returncode = 130
    finally:
        if not was_running and postgres_running():
            say("stopping the PostgreSQL server this run started")
            subprocess.run(["bash", str(POSTGRES_SH), "stop"], cwd=ROOT)
    sys.exit(returncode)


def split_posargs(args: list[str]) -> tuple[list[str], list[str]]:
    """Split ARGS at the first `--` into (before, after)."""
    if "--" in args:
        i = args.index("--")
        return args[:i], args[i + 1 :]
    return args, []


def session_with_posargs(session: str, args: list[str]) -> list[str]:
    """`dev.py demo --port 8001` -> nox -s demo -- --port 8001 (a leading `--` is dropped)."""
    if args and args[0] == "--":
        args = args[1:]
    return ["-s", session, "--", *args] if args else ["-s", session]


def usage(exit_code: int = 0) -> None:
    print(__doc__.strip())
    sys.exit(exit_code)


def main(argv: list[str]) -> None:
    check_python()
    if not argv or argv[0] in {"-h", "--help", "help"}:
        usage(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command == "test":
        # Options before `--` go to nox (e.g. --reuse-venv=no), the rest to pytest.
        nox_opts, pytest_args = split_posargs(rest)
        args = [*nox_opts, "-s", *DEFAULT_TEST_SESSIONS]
        if pytest_args:
            args += ["--", *pytest_args]
        run_tests(args)
    elif command == "demo":
        exec_nox(session_with_posargs("demo", rest))
    elif command == "lint":
        exec_nox(["-s", "lint", *rest])
    elif command == "schema":
        exec_nox(session_with_posargs("schema", rest))
    elif command in {"bench", "benchmarks"}:
        exec_nox(session_with_posargs("benchmarks", rest))
    elif command == "postgres":
        cmd = ["bash", str(POSTGRES_SH), *rest]
        os.execvp(cmd[0], cmd)
    elif command == "nox":
        exec_nox(rest)
    else:
        print(f"dev.py: unknown command {command!r}\n", file=sys.stderr)
        usage(2)


if __name__ == "__main__":
    main(sys.argv[1:])
