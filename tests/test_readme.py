"""The README's Python examples: each compiles, and mypy (with django-stubs and
djangorestframework-stubs) accepts them, so that what users copy type-checks.

The examples are fragments: they use names such as `request` or `car` that the README never
defines. `PREAMBLE` defines them, with the demo's real models where the README means those. The
type check needs mypy and the stubs (the nox session `types` installs them); elsewhere it is
skipped, or fails when REVY_REQUIRE_TYPES=1 (as the `types` session sets).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

# What the examples use without defining it. Keep it small: a name missing here shows up as a
# mypy "name-defined" error naming the README line.
PREAMBLE = textwrap.dedent(
    """\
    # mypy: disable-error-code="no-redef"
    # (the README defines `some_task` twice, to show two ways of doing one thing)
    from datetime import datetime
    from typing import Any

    from django.contrib.auth.models import User
    from django.db import models
    from django.urls import include, path
    from rest_framework.routers import DefaultRouter

    from example.api.rest import TransactionSerializer
    from example.garage.models import Car
    from example.ledger.models import Transaction
    from revy import Context
    from revy.contrib.django.models import CASCADE

    Account: Any  # the README's listener calls a method of the reader's own Account model
    TransactionViewSet: Any  # defined in one README block, routed in the next
    comment: Any
    request: Any
    user: User
    bob: User
    car: Car
    revision: Any
    some_datetime: datetime
    router = DefaultRouter()


    def deserialize(data: Any) -> Transaction:
        raise NotImplementedError


    def send_welcome_mail(user: Any) -> None:
        raise NotImplementedError


    """
)


def python_blocks(text: str | None = None) -> list[tuple[int, str]]:
    """Return the README's ```python blocks as (line number of their first line, code)."""
    text = README.read_text(encoding="utf-8") if text is None else text
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
        blocks.append((text.count("\n", 0, match.start(1)) + 1, match.group(1)))
    return blocks


def example_modules(directory: Path) -> list[Path]:
    """Write one module per README block into `directory`.

    Each block is its own module, as a reader would paste it. The preamble comes first, and
    blank lines after it put every block on its README line numbers, so mypy's messages name
    README lines (the first block starts far enough down for that).
    """
    preamble_lines = PREAMBLE.count("\n")
    paths = []
    for index, (line, code) in enumerate(python_blocks()):
        padding = line - 1 - preamble_lines
        assert padding >= 0, f"a README block starts before line {preamble_lines}"
        path = directory / f"readme_example_{index:02d}.py"
        path.write_text(PREAMBLE + "\n" * padding + code, encoding="utf-8")
        paths.append(path)
    return paths


def test_the_readme_has_python_examples_and_every_one_compiles():
    blocks = python_blocks()
    assert len(blocks) >= 15
    for line, code in blocks:
        compile(PREAMBLE + code, f"README.md:{line}", "exec")


def test_python_blocks_keep_their_readme_line_numbers():
    text = "intro\n```python\nx = 1\n```\n\n```python\ny = 2\nz = 3\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n"), (7, "y = 2\nz = 3\n")]


def _require_type_checker() -> None:
    required = os.environ.get("REVY_REQUIRE_TYPES") == "1"
    for module in ("mypy", "mypy_django_plugin", "mypy_drf_plugin"):
        try:
            __import__(module)
        except ImportError:
            if required:
                raise
            pytest.skip(
                f"needs mypy, django-stubs and djangorestframework-stubs ({module} is missing): "
                "python3 dev.py nox -s types"
            )


def test_the_readme_examples_type_check(tmp_path):
    _require_type_checker()
    paths = example_modules(tmp_path)
    # In a child process: the django-stubs plugin sets Django up again, which must not touch
    # the state of this test process. Run from the project root, it shares the `types`
    # session's incremental cache (.mypy_cache/).
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--no-error-summary",
            "--show-error-codes",
            *(str(path) for path in paths),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    # Name the README line of each error rather than the temporary file.
    report = result.stdout
    for path in paths:
        report = report.replace(str(path), "README.md")
    assert result.returncode == 0, f"mypy rejected the README's examples:\n{report}{result.stderr}"
