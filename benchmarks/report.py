"""Presenting results: the console table, the markdown report and the bar chart."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from benchmarks.harness import Result

COLUMNS = (
    ("Operation", "<"),
    ("N", ">"),
    ("Django", ">"),
    ("revy", ">"),
    ("Ratio", ">"),
    ("Goal", ">"),
    ("", "<"),
    ("SQL/op", ">"),
    ("Extra SQL/op", ">"),
    ("Notes", "<"),
)

LEGEND = (
    "Django: time per operation with revy's hooks uninstalled and no context. revy: the same "
    "code tracked (hooks installed, inside a Context with an actor). Times: median of the "
    "rounds. Ratio: median over interleaved rounds of revy/Django measured back to back. SQL/op: "
    "statements per operation, Django -> revy, as CaptureQueriesContext counts them "
    "(BEGIN/COMMIT included; an executemany counts once)."
)


# Formatting ------------------------------------------------------------------------------


def format_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def format_count(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "-"
    text = f"{value:g}" if value == int(value) else f"{value:.2f}"
    return f"+{text}" if sign and value >= 0 else text


def row(result: Result) -> list[str]:
    sql = format_count(result.sql_tracked)
    if result.sql_untracked is not None:
        sql = f"{format_count(result.sql_untracked)} -> {sql}"
    return [
        result.name,
        f"{result.n:,}",
        format_time(result.untracked),
        format_time(result.tracked),
        "-" if result.ratio is None else f"{result.ratio:.2f}x",
        "-" if result.goal is None else result.goal.label(),
        result.status,
        sql,
        format_count(result.extra_sql, sign=True),
        result.note,
    ]


def rounds(results: Sequence[Result]) -> str:
    """Every timed round of every line (per operation), to judge the noise."""
    lines = []
    for result in results:
        for mode, values in result.samples.items():
            times = ", ".join(format_time(value) for value in values)
            lines.append(f"{result.name} [{mode}]: {times}")
    return "\n".join(lines)


def profiles(results: Sequence[Result]) -> str:
    """The cProfile tables of the lines that missed their goal."""
    missed = [result for result in results if result.passed is False and result.profile]
    if not missed:
        return "Profiles: no missed goal to profile."
    parts = [f"Profile: {result.name}\n{result.profile}" for result in missed]
    return "\n\n".join(parts)


def summary(results: Sequence[Result]) -> str:
    graded = [result for result in results if result.passed is not None]
    missed = [result.name for result in graded if not result.passed]
    text = f"Goals: {len(graded) - len(missed)} of {len(graded)} met"
    return text + (f"; missed: {'; '.join(missed)}" if missed else "")


def table(results: Sequence[Result]) -> str:
    """A plain-text table for the console."""
    lines = [[title for title, _ in COLUMNS]] + [row(result) for result in results]
    widths = [max(len(line[index]) for line in lines) for index in range(len(COLUMNS))]

    def render(cells: list[str]) -> str:
        parts = [
            f"{cell:{align}{width}}"
            for cell, width, (_, align) in zip(cells, widths, COLUMNS, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths).rstrip()
    return "\n".join([render(lines[0]), rule, *(render(cells) for cells in lines[1:])])


def markdown(results: Sequence[Result], environment: str, command: str) -> str:
    header = [title or "Result" for title, _ in COLUMNS]
    aligns = ["---:" if align == ">" else "---" for _, align in COLUMNS]
    body = ["| " + " | ".join(cell.replace("|", "\\|") for cell in row(r)) + " |" for r in results]
    return "\n".join(
        [
            "# revy benchmarks",
            "",
            f"`{command}`",
            "",
            f"Environment: {environment}",
            "",
            "| " + " | ".join(header) + " |",
            "| " + " | ".join(aligns) + " |",
            *body,
            "",
            summary(results) + ".",
            "",
            LEGEND,
            "",
        ]
    )


def write_markdown(path: str, results: Sequence[Result], environment: str, command: str) -> None:
    Path(path).write_text(markdown(results, environment, command), encoding="utf-8")


# Environment -----------------------------------------------------------------------------


def environment(database: str) -> str:
    """One line: Python, Django, revy, the database, the machine."""
    import django

    try:
        revy_version = metadata.version("revy")
    except metadata.PackageNotFoundError:
        revy_version = "?"
    commit = _git_commit()
    revy_text = f"revy {revy_version}" + (f" ({commit})" if commit else "")
    return (
        f"Python {platform.python_version()}, Django {django.get_version()}, {revy_text}, "
        f"{database}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"
    )


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


# Plot ------------------------------------------------------------------------------------


def plot(path: str, results: Sequence[Result], title: str) -> bool:
    """Write a bar chart of the ratios (and of the absolute-time lines) with the goals.

    matplotlib is optional: returns False, after saying so, when it is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            f"--plot: matplotlib is not installed, {path} was not written "
            "(pip install matplotlib).",
            file=sys.stderr,
        )
        return False

    ratios = [result for result in results if result.ratio is not None]
    absolute = [result for result in results if result.ratio is None]
    colours = {True: "#4c9a2a", False: "#c0392b", None: "#7f8c8d"}
    figure, axes = plt.subplots(
        1,
        2 if absolute else 1,
        figsize=(13, 0.45 * len(ratios) + 2),
        gridspec_kw={"width_ratios": [3, 1]} if absolute else None,
        squeeze=False,
    )

    def bars(axis, lines, values, goal_of, xlabel, reference=None):
        positions = range(len(lines))
        axis.barh(positions, values, color=[colours[line.passed] for line in lines])
        for position, line, value in zip(positions, lines, values, strict=True):
            goal = goal_of(line)
            if goal is not None:
                axis.plot([goal, goal], [position - 0.4, position + 0.4], "k--", linewidth=1.5)
            axis.text(value, position, f" {value:.2f}", va="center", fontsize=8)
        if reference is not None:
            axis.axvline(reference, color="#34495e", linewidth=0.8)
        axis.set_yticks(list(positions), [line.name for line in lines], fontsize=8)
        axis.invert_yaxis()
        axis.set_xlabel(xlabel)

    bars(
        axes[0][0],
        ratios,
        [line.ratio for line in ratios],
        lambda line: line.goal.limit if line.goal else None,
        "revy / Django (dashed: goal; 1 = no overhead)",
        reference=1.0,
    )
    if max((line.ratio for line in ratios), default=1) > 4:
        # A log scale keeps 1.1x readable beside 40x.
        from matplotlib.ticker import FuncFormatter

        axis = axes[0][0]
        axis.set_xscale("log", base=2)
        axis.set_xlim(left=min(0.8, *(line.ratio * 0.9 for line in ratios)))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    if absolute:
        bars(
            axes[0][1],
            absolute,
            [line.tracked * 1e3 for line in absolute],
            lambda line: line.goal.limit * 1e3 if line.goal else None,
            "ms per call (dashed: goal)",
        )
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True
