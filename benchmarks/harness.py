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

Before the timed rounds every mode runs once with a `StatementCounter` around its timed part;
that run also warms the caches. The counter counts statements as Django's cursors send them
(a connection execute wrapper; an `executemany` is one statement), and apart from them the
transaction control (`BEGIN`, `COMMIT`, `SAVEPOINT`, `RELEASE`, `ROLLBACK`) where the database
sees it, since Django's query log leaves most of it out: SQLite's trace callback sees every
statement the library runs (the COMMIT of `connection.commit()` included), libpq's protocol
trace on PostgreSQL every statement the server ran (psycopg sends `BEGIN` and `COMMIT` itself).
The counts per operation are deterministic.
"""

from __future__ import annotations

import cProfile
import gc
import io
import os
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection

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


TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "START")


class StatementCounter:
    """Count the statements the database runs while entered: (statements, transaction
    control). See the module documentation for how, per database."""

    def __init__(self) -> None:
        self.statements = 0
        self.transaction_control = 0
        self._trace = None
        self._wrapper = None

    @staticmethod
    def _controls(sql: str) -> bool:
        return sql.lstrip().upper().startswith(TRANSACTION_CONTROL)

    def _execute(self, execute, sql, params, many, context):
        if not self._controls(sql):  # transaction control is counted by the database
            self.statements += 1
        return execute(sql, params, many, context)

    def _seen(self, sql: str) -> None:
        if self._controls(sql):
            self.transaction_control += 1

    def __enter__(self) -> StatementCounter:
        connection.ensure_connection()
        self._wrapper = connection.execute_wrapper(self._execute)
        self._wrapper.__enter__()
        raw = connection.connection
        if connection.vendor == "sqlite":
            raw.set_trace_callback(self._seen)
        elif connection.vendor == "postgresql":
            from psycopg import pq

            self._trace = tempfile.TemporaryFile(mode="w+")
            raw.pgconn.trace(self._trace.fileno())
            raw.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        return self

    def __exit__(self, *exc_info) -> None:
        self._wrapper.__exit__(*exc_info)
        raw = connection.connection
        if connection.vendor == "sqlite":
            raw.set_trace_callback(None)
        elif self._trace is not None:
            raw.pgconn.untrace()
            self._trace.flush()
            os.fsync(self._trace.fileno())
            self._trace.seek(0)
            for line in self._trace:
                # `B	<length>	CommandComplete	 "INSERT 0 1"`: the server ran a statement.
                parts = line.split("\t")
                if len(parts) >= 4 and parts[0] == "B" and parts[2] == "CommandComplete":
                    self._seen(parts[3].strip().strip('"'))
            self._trace.close()
            self._trace = None


@dataclass
class Result:
    """One line of the report. Times are seconds per operation; SQL counts per operation,
    transaction control (`tx_*`) counted apart.

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
    tx_untracked: float | None = None
    tx_tracked: float = 0.0
    samples: dict[str, list[float]] = field(default_factory=dict, repr=False)
    profile: str = field(default="", repr=False)

    @property
    def extra_sql(self) -> float | None:
        if self.sql_untracked is None:
            return None
        extra = self.sql_tracked - self.sql_untracked
        if self.tx_untracked is not None:
            extra += self.tx_tracked - self.tx_untracked
        return extra

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
        self.transaction_control = 0
        self.profiler = profiler
        self._count = count_queries
        self._counter: StatementCounter | None = None
        self._start = 0.0

    def __enter__(self) -> Clock:
        if self._count:
            self._counter = StatementCounter().__enter__()
        if self.profiler is not None:
            self.profiler.enable()
        self._start = options.clock()
        return self

    def __exit__(self, *exc_info) -> None:
        self.seconds += options.clock() - self._start
        if self.profiler is not None:
            self.profiler.disable()
        if self._counter is not None:
            self._counter.__exit__(*exc_info)
            self.queries += self._counter.statements
            self.transaction_control += self._counter.transaction_control
            self._counter = None


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
    transaction_control: dict[str, float] = field(default_factory=dict)
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
            tx_untracked=None if baseline is None else self.transaction_control[baseline],
            tx_tracked=self.transaction_control[mode],
            samples=samples,
            profile=self.profiles.get(mode, ""),
            **extra,
        )


def measure(modes: list[Mode], *, n: int, rounds: int) -> Measurement:
    """Count statements (and warm up), then time `rounds` interleaved rounds of every mode."""
    queries, transaction_control = {}, {}
    for mode in modes:
        set_tracking(mode.installed)
        counter = Clock(count_queries=True)
        mode.run(counter)
        queries[mode.name] = counter.queries / n
        transaction_control[mode.name] = counter.transaction_control / n
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
    return Measurement(
        samples=samples,
        queries=queries,
        transaction_control=transaction_control,
        profiles=profiles,
    )


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
