"""Measuring: interleaved rounds, SQL statement counts, results and goals.

A benchmark compares *modes* of one operation, typically Django alone (revy's hooks
uninstalled) and the same code with revy tracking it. Each mode is a function that prepares its
data (untimed) and runs `n` operations inside `with clock:`.

Noise (other processes, the disk, CPU frequency) comes and goes; the modes run in short rounds,
alternately and in rotating order, so that the runs of one round are measured back to back
under the same conditions. Then:

- the ratio of two modes is the median, over rounds, of their ratio within each round: a busy
  moment slows both runs of its round and cancels out, and the median ignores an odd round;
- a mode's time per operation is the median of its rounds (so that the times shown agree with
  the ratio; on a quiet machine it is close to the best round, which `-v` shows).

Before the timed rounds every mode runs once with `CaptureQueriesContext` around its timed
part; that run also warms the caches. The statements captured give the SQL count per
operation, which is deterministic.
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection, reset_queries
from django.test.utils import CaptureQueriesContext

from revy.contrib.django import hooks


class Options:
    """Switches the command line sets for every measurement."""

    # Wall-clock time (perf_counter), or this process's CPU time (process_time): the latter
    # ignores other processes and waiting for the disk or the database server, so it shows
    # revy's own cost on a busy machine, and with SQLite (in-process) the database's CPU too.
    clock = time.perf_counter
    profile = False  # also run each revy mode once under cProfile (see `profile_text`)
    profile_lines = 15


options = Options()


def set_tracking(installed: bool) -> None:
    """Install revy's hooks on Django's model methods, or restore Django's own."""
    if installed:
        hooks.install()
    else:
        hooks.uninstall()


@dataclass(frozen=True)
class Goal:
    """`ratio`: tracked/untracked at most `limit`; `time`: seconds per operation below `limit`."""

    kind: str
    limit: float

    def label(self) -> str:
        if self.kind == "ratio":
            return f"<= {self.limit:g}x"
        return f"< {self.limit * 1e3:g} ms"

    def met_by(self, result: Result) -> bool | None:
        if self.kind == "ratio":
            # Judged at the precision the report shows, so that "1.15x" never misses "<= 1.15x".
            return None if result.ratio is None else round(result.ratio, 2) <= self.limit
        return result.tracked < self.limit


def ratio_goal(limit: float) -> Goal:
    return Goal("ratio", limit)


def time_goal(seconds: float) -> Goal:
    return Goal("time", seconds)


@dataclass
class Result:
    """One line of the report. Times are seconds per operation; SQL counts per operation.

    `untracked` is None for operations Django alone cannot do (history queries): then
    `tracked` is simply revy's time and there is no ratio.
    """

    name: str
    n: int
    untracked: float | None
    tracked: float
    ratio: float | None
    sql_untracked: float | None
    sql_tracked: float
    goal: Goal | None = None
    note: str = ""
    samples: dict[str, list[float]] = field(default_factory=dict, repr=False)
    profile: str = field(default="", repr=False)

    @property
    def extra_sql(self) -> float | None:
        if self.sql_untracked is None:
            return None
        return self.sql_tracked - self.sql_untracked

    @property
    def passed(self) -> bool | None:
        return None if self.goal is None else self.goal.met_by(self)

    @property
    def status(self) -> str:
        return {True: "PASS", False: "MISS", None: ""}[self.passed]


class Clock:
    """Times the measured part of a run: `with clock: ...` (may be entered several times).

    When counting, it also captures the SQL statements of the measured part, and only those
    (the run's preparation does not count).
    """

    def __init__(
        self, count_queries: bool = False, profiler: cProfile.Profile | None = None
    ) -> None:
        self.seconds = 0.0
        self.queries = 0
        self.profiler = profiler
        self._capture = CaptureQueriesContext(connection) if count_queries else None
        self._start = 0.0

    def __enter__(self) -> Clock:
        if self._capture is not None:
            reset_queries()  # the log keeps 9,000 statements at most
            self._capture.__enter__()
        if self.profiler is not None:
            self.profiler.enable()
        self._start = options.clock()
        return self

    def __exit__(self, *exc_info) -> None:
        self.seconds += options.clock() - self._start
        if self.profiler is not None:
            self.profiler.disable()
        if self._capture is not None:
            self._capture.__exit__(*exc_info)
            self.queries += len(self._capture.captured_queries)


@dataclass
class Mode:
    """One way of running an operation: with revy's hooks `installed` or not.

    `run(clock)` prepares its data (untimed) and runs the operations inside `with clock:`.
    """

    name: str
    installed: bool
    run: Callable[[Clock], None]


@dataclass
class Measurement:
    """Per mode: every round's time per operation, and SQL statements per operation."""

    samples: dict[str, list[float]]
    queries: dict[str, float]
    profiles: dict[str, str] = field(default_factory=dict)

    def typical(self, mode: str) -> float:
        return statistics.median(self.samples[mode])

    def ratio(self, mode: str, baseline: str) -> float:
        """Median over rounds of `mode`'s time divided by `baseline`'s in the same round."""
        pairs = zip(self.samples[mode], self.samples[baseline], strict=True)
        return statistics.median(value / base for value, base in pairs)

    def result(self, name: str, mode: str, baseline: str | None, n: int, **extra) -> Result:
        """A report line for `mode` compared with `baseline` (None: no comparison)."""
        samples = {"tracked": self.samples[mode]}
        if baseline is not None:
            samples["untracked"] = self.samples[baseline]
        return Result(
            name=name,
            n=n,
            untracked=None if baseline is None else self.typical(baseline),
            tracked=self.typical(mode),
            ratio=None if baseline is None else self.ratio(mode, baseline),
            sql_untracked=None if baseline is None else self.queries[baseline],
            sql_tracked=self.queries[mode],
            samples=samples,
            profile=self.profiles.get(mode, ""),
            **extra,
        )


def measure(modes: list[Mode], *, n: int, rounds: int) -> Measurement:
    """Count statements (and warm up), then time `rounds` interleaved rounds of every mode."""
    queries = {}
    for mode in modes:
        set_tracking(mode.installed)
        counter = Clock(count_queries=True)
        mode.run(counter)
        queries[mode.name] = counter.queries / n
    samples: dict[str, list[float]] = {mode.name: [] for mode in modes}
    for index in range(rounds):
        shift = index % len(modes)
        for mode in modes[shift:] + modes[:shift]:  # rotate who goes first
            set_tracking(mode.installed)
            gc.collect()
            clock = Clock()
            mode.run(clock)
            samples[mode.name].append(clock.seconds / n)
    profiles = {}
    if options.profile:
        for mode in modes:
            if mode.installed:
                set_tracking(True)
                clock = Clock(profiler=cProfile.Profile())
                mode.run(clock)
                profiles[mode.name] = profile_text(clock.profiler, n)
    set_tracking(True)
    return Measurement(samples=samples, queries=queries, profiles=profiles)


def profile_text(profiler: cProfile.Profile, n: int) -> str:
    """revy's functions by cumulative time, then every function by own time (where the time
    finally goes: SQL drivers, commits, query compilation), for one run of `n` operations."""
    sections = [
        ("revy's functions by cumulative time", "cumulative", r"[/\\]revy[/\\]"),
        ("all functions by own time", "tottime", None),
    ]
    total = pstats.Stats(profiler).total_tt
    parts = [f"one run of {n} operation(s), {total:.3f} s under cProfile"]
    for title, key, restriction in sections:
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream).sort_stats(key)
        if restriction:
            stats.print_stats(restriction, options.profile_lines)
        else:
            stats.print_stats(options.profile_lines // 2)
        lines = stream.getvalue().splitlines()
        # Keep the table, without pstats' preamble.
        start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
        parts.append(f"{title}:")
        parts.extend(line for line in lines[start:] if line.strip())
    return "\n".join(parts)


def compare(
    name: str,
    *,
    untracked: Callable[[Clock], None],
    tracked: Callable[[Clock], None],
    n: int,
    rounds: int,
    goal: Goal | None = None,
    note: str = "",
) -> Result:
    """Time Django alone (hooks uninstalled) against revy (hooks installed), interleaved."""
    measured = measure(
        [Mode("untracked", False, untracked), Mode("tracked", True, tracked)],
        n=n,
        rounds=rounds,
    )
    return measured.result(name, "tracked", "untracked", n, goal=goal, note=note)


class Counter:
    """Fresh values for every run, so that every update really changes its row."""

    def __init__(self) -> None:
        self.value = 0

    def __call__(self) -> int:
        self.value += 1
        return self.value
