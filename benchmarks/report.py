"""Presenting results: the console table, the markdown report and the bar chart.

A markdown report written with `database=` holds one section per database: running SQLite and
then PostgreSQL with the same `--report` path (as `python3 dev.py bench` does) gives one report
of both, each section replaced by the next run of its database. Each section also keeps its
results as JSON in an HTML comment, from which `plot_report()` draws every database the report
holds, so that the chart always shows what the report says.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

from benchmarks.harness import Goal, Result

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
    "statements per operation, Django -> revy, as Django's cursors send them (an executemany "
    "counts once), and in brackets the transaction control besides them (BEGIN, COMMIT, "
    "SAVEPOINT, RELEASE), counted where the database sees it: SQLite's trace callback, libpq's "
    "protocol trace on PostgreSQL. Extra SQL/op: revy's statements beyond Django's, "
    "transaction control included."
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


def _statements(statements: float, transaction_control: float | None) -> str:
    if transaction_control is None:
        return format_count(statements)
    return f"{format_count(statements)} (+{format_count(transaction_control)})"


def row(result: Result) -> list[str]:
    sql = _statements(result.sql_tracked, result.tx_tracked)
    if result.sql_untracked is not None:
        sql = f"{_statements(result.sql_untracked, result.tx_untracked)} -> {sql}"
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
    """The cProfile tables of the lines that missed their goal (or compare without one)."""
    missed = [
        result
        for result in results
        if result.profile
        and (result.passed is False or (result.goal is None and result.ratio is not None))
    ]
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


def _table_lines(results: Sequence[Result], environment: str, command: str) -> list[str]:
    """The command, environment, results table and summary of one run, as markdown lines."""
    header = [title or "Result" for title, _ in COLUMNS]
    aligns = ["---:" if align == ">" else "---" for _, align in COLUMNS]
    body = ["| " + " | ".join(cell.replace("|", "\\|") for cell in row(r)) + " |" for r in results]
    return [
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
    ]


def markdown(results: Sequence[Result], environment: str, command: str) -> str:
    return "\n".join(
        ["# revy benchmarks", "", *_table_lines(results, environment, command), LEGEND, ""]
    )


def write_markdown(
    path: str,
    results: Sequence[Result],
    environment: str,
    command: str,
    database: str | None = None,
) -> None:
    """Write the markdown report to `path`.

    Without `database`, the file holds this run only. With `database` (`"sqlite"` or
    `"postgres"`), this run replaces that database's section of the file and the sections of
    other databases are kept.
    """
    target = Path(path)
    if database is None:
        target.write_text(markdown(results, environment, command), encoding="utf-8")
        return
    existing = target.read_text(encoding="utf-8") if target.exists() else ""
    sections = _sections(existing)
    sections[database] = _section(database, results, environment, command)
    target.write_text(_combined(sections), encoding="utf-8")


# One report, one section per database ------------------------------------------------------

DATABASE_TITLES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
_SECTION = re.compile(
    r"<!-- revy-bench:(?P<database>[\w-]+) -->\n(?P<body>.*?)<!-- /revy-bench:(?P=database) -->",
    re.DOTALL,
)
_DATA = re.compile(r"<!-- revy-bench-data (?P<data>.*?) -->", re.DOTALL)


def _title(database: str) -> str:
    return DATABASE_TITLES.get(database, database)


def _section(database: str, results: Sequence[Result], environment: str, command: str) -> str:
    # ">" escaped so that no value can close the HTML comment early.
    data = json.dumps([_as_data(result) for result in results]).replace(">", "\\u003e")
    return "\n".join(
        [
            f"## {_title(database)}",
            "",
            *_table_lines(results, environment, command),
            f"<!-- revy-bench-data {data} -->",
            "",
        ]
    )


def _sections(text: str) -> dict[str, str]:
    return {match["database"]: match["body"] for match in _SECTION.finditer(text)}


def _combined(sections: Mapping[str, str]) -> str:
    order = [name for name in DATABASE_TITLES if name in sections]
    order += sorted(name for name in sections if name not in DATABASE_TITLES)
    parts = ["# revy benchmarks", "", LEGEND, ""]
    for name in order:
        parts += [f"<!-- revy-bench:{name} -->", sections[name].rstrip("\n"), ""]
        parts += [f"<!-- /revy-bench:{name} -->", ""]
    return "\n".join(parts)


def _as_data(result: Result) -> dict:
    data = dataclasses.asdict(result)
    for heavy in ("samples", "profile"):
        data.pop(heavy, None)
    return data


def _from_data(data: dict) -> Result:
    known = {item.name for item in dataclasses.fields(Result)}
    values = {key: value for key, value in data.items() if key in known}
    if values.get("goal") is not None:
        values["goal"] = Goal(**values["goal"])
    return Result(**values)


def read_report(path: str) -> dict[str, list[Result]]:
    """Return the results of every database section of a markdown report, in report order."""
    text = Path(path).read_text(encoding="utf-8")
    found = {}
    for name, body in _sections(text).items():
        match = _DATA.search(body)
        if match:
            found[name] = [_from_data(item) for item in json.loads(match["data"])]
    order = [name for name in DATABASE_TITLES if name in found]
    order += [name for name in found if name not in DATABASE_TITLES]
    return {name: found[name] for name in order}


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


def load_average() -> str:
    """The machine's load average (1, 5 and 15 minutes), or "unknown" where there is none.

    Other processes slow both sides of a comparison, but not always equally: the report says
    how busy the machine was.
    """
    try:
        one, five, fifteen = os.getloadavg()
    except (AttributeError, OSError):
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


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
    return plot_databases(path, {"": results}, title)


def plot_report(report_path: str, path: str, title: str = "revy's overhead") -> bool:
    """Chart every database of a markdown report (one row of panels each) into `path`."""
    panels = {_title(name): results for name, results in read_report(report_path).items()}
    return plot_databases(path, panels, title)


def plot_databases(path: str, panels: Mapping[str, Sequence[Result]], title: str) -> bool:
    """Write one row of bar charts per entry of `panels` (its key titles the row)."""
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

    has_absolute = any(result.ratio is None for results in panels.values() for result in results)
    heights = [
        0.45 * max(1, sum(result.ratio is not None for result in results)) + 1.5
        for results in panels.values()
    ]
    figure, axes = plt.subplots(
        len(panels),
        2 if has_absolute else 1,
        figsize=(13, sum(heights) + 0.5),
        gridspec_kw={
            "height_ratios": heights,
            **({"width_ratios": [3, 1]} if has_absolute else {}),
        },
        squeeze=False,
    )
    for axes_row, (name, results) in zip(axes, panels.items(), strict=True):
        _draw_panel(axes_row, results, name)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


_COLOURS = {True: "#4c9a2a", False: "#c0392b", None: "#7f8c8d"}


def _bars(axis, lines, values, goal_of, xlabel, reference=None) -> None:
    positions = range(len(lines))
    axis.barh(positions, values, color=[_COLOURS[line.passed] for line in lines])
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


def _draw_panel(axes_row, results: Sequence[Result], name: str) -> None:
    ratios = [result for result in results if result.ratio is not None]
    absolute = [result for result in results if result.ratio is None]
    _bars(
        axes_row[0],
        ratios,
        [line.ratio for line in ratios],
        lambda line: line.goal.limit if line.goal else None,
        "revy / Django (dashed: goal; 1 = no overhead)",
        reference=1.0,
    )
    if name:
        axes_row[0].set_title(name, fontsize=10, loc="left")
    if max((line.ratio for line in ratios), default=1) > 4:
        # A log scale keeps 1.1x readable beside 40x.
        from matplotlib.ticker import FuncFormatter

        axis = axes_row[0]
        axis.set_xscale("log", base=2)
        axis.set_xlim(left=min(0.8, *(line.ratio * 0.9 for line in ratios)))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    if len(axes_row) > 1:
        if absolute:
            _bars(
                axes_row[1],
                absolute,
                [line.tracked * 1e3 for line in absolute],
                lambda line: line.goal.limit * 1e3 if line.goal else None,
                "ms per call (dashed: goal)",
            )
        else:
            axes_row[1].set_axis_off()
