"""Anomaly monitors: what every row-level rule lets through.

A batch in which every row is valid can still be wrong as a whole: a day
missing or loaded twice, amounts in dollars instead of cents, timestamps
shifted by a time zone, a category that collapses, prices changed a
hundredfold. The monitors measure each source per day (rows, means, spreads,
shares, ratios, the hour of day) and compare the newest days with what earlier
days of the data and the published history lead one to expect
(:mod:`dq.anomaly`); sources without a time column are compared with their
published version.

What is monitored is declared per source (``monitors:``, :mod:`dq.monitor_spec`),
with defaults. Every check a run makes is kept in the quality history
(:mod:`dq.history`), validated as a GX suite (Data Docs show each one with its
expected range and observed value) and named in one readable line in the
summary and the notifications.

Which days are checked: every calendar day newer than the published data (at
most :data:`MAX_CHECKED_DAYS`), or the newest :data:`FIRST_RUN_DAYS` days when
nothing was published yet. They are learnt from the ``training_days`` before
the first of them: the run's own data first, then the published history (a
source that delivers only new days trains on what was published).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import sqlite3
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

from dq import history
from dq.anomaly import CLOCK, COUNT, LEVEL, SHARE, band, training_window
from dq.sources import NUMERIC, Source

#: Days checked when nothing was published yet (Elementary's detection period).
FIRST_RUN_DAYS = 2
#: Most days a run checks; older new days only train.
MAX_CHECKED_DAYS = 14
#: A day this many empty days away from the rest of the data is isolated.
ISOLATION_DAYS = 7
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass
class Observation:
    """One check of one metric on one day (or of an untimed table)."""

    source: str
    tbl: str
    monitor: str
    metric: str
    segment: str
    bucket: str
    observed: float
    expected: float
    lower: float
    upper: float
    n: int
    status: str  # ok | anomaly
    severity: str  # stop | warn
    line: str


@dataclass
class Report:
    """What the monitors found in one build."""

    observations: list[Observation] = field(default_factory=list)
    learning: list[str] = field(default_factory=list)
    candidates: list[tuple] = field(default_factory=list)  # history.candidates rows

    @property
    def anomalies(self) -> list[Observation]:
        found = [o for o in self.observations if o.status == "anomaly"]
        return sorted(found, key=lambda o: (o.severity != "stop", o.source, o.bucket, o.metric))

    @property
    def stops(self) -> list[Observation]:
        return [o for o in self.anomalies if o.severity == "stop"]

    def as_detail(self) -> dict:
        return {
            "checks": len(self.observations),
            "anomalies": [asdict(o) for o in self.anomalies],
            "learning": self.learning,
        }


# ------------------------------------------------------------------ measuring


@dataclass
class _Series:
    monitor: str
    kind: str
    label: str  # how a line names the metric
    points: dict[dt.date, tuple[float, int]] = field(default_factory=dict)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_DOTTED = re.compile(r"\b([a-z][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\b")


def _relation(sources: dict[str, Source], source: Source, expressions: list[str]):
    """``from`` clause of the source's clean table joined to the sources its
    expressions name as ``<source>.<column>`` (through its references columns),
    and the expressions rewritten to the joined columns."""
    joins, nouns = [], []
    for expression in expressions:
        nouns += [m.group(1) for m in _DOTTED.finditer(expression or "")]
    for noun in dict.fromkeys(nouns):
        via = next((c for c in source.columns if c.references == noun), None)
        if via is None or noun not in sources:
            raise ValueError(f"{source.noun}: {noun} is not a source this one references")
        target = sources[noun]
        picked = ", ".join(f"{_q(c.name)} as {_q(f'{noun}.{c.name}')}" for c in target.columns)
        joins.append(
            f"left join (select {picked} from {_q(target.clean_table)}) as {_q('r_' + noun)}"
            f" on base.{_q(via.name)} = {_q('r_' + noun)}.{_q(noun + '.' + target.clean_key[0])}"
        )
    rewritten = [
        _DOTTED.sub(lambda m: _q(f"{m.group(1)}.{m.group(2)}"), e) if e else e for e in expressions
    ]
    return f"{_q(source.clean_table)} as base " + " ".join(joins), rewritten


def _day(value: str) -> dt.date | None:
    with contextlib.suppress(TypeError, ValueError):
        return dt.date.fromisoformat(str(value)[:10])
    return None


def _time_column(sources: dict[str, Source], source: Source):
    """The declared time column (Column) and its SQL name, or (None, None)."""
    time = source.monitors.time
    if not time:
        return None, None
    if "." in time:
        noun, name = time.split(".", 1)
        owner = sources.get(noun)
    else:
        owner, name = source, time
    column = next((c for c in owner.columns if c.name == name), None) if owner else None
    return column, time


def _counts_by(con, relation: str, where: str, day: str, column: str):
    """Rows per day and value of one column, and rows per day."""
    rows = con.execute(
        f"select {day}, {column}, count(*) from {relation} {where} group by 1, 2"
    ).fetchall()
    per_day: dict[str, int] = defaultdict(int)
    for bucket, _, n in rows:
        per_day[bucket] += n
    return rows, per_day


def measure(
    con,
    sources: dict[str, Source],
    source: Source,
    chr_function: str = "char",
    text_type: str = "text",
    stage=None,
):
    """Per-day series of every metric the source's monitors watch:
    ``{(metric, segment): _Series}``, with the days and rows per day."""
    spec = source.monitors
    column, time = _time_column(sources, source)
    numbers = [
        c
        for c in source.columns
        if c.type in NUMERIC and c.name not in source.clean_key and not c.references
    ]
    by = spec.check("volume").option("by") if spec.check("volume").on else None
    ratios = list(spec.ratios) if spec.check("ratios").on else []
    exprs = [time, by, *(r.numerator for r in ratios), *(r.denominator for r in ratios)]
    relation, rewritten = _relation(sources, source, exprs)
    t = rewritten[0] if "." in time else f"base.{_q(time)}"
    segment_of = (rewritten[1] if "." in by else f"base.{_q(by)}") if by else None
    rewritten = [rewritten[0], *rewritten[2:]]
    day = f"substr({t}, 1, 10)"
    where = f"where {t} is not null"
    if stage is not None and " join " in relation:
        # The queries below each read the whole joined relation: join it once
        # (the target's temporary table; None where it cannot make one).
        relation = stage(con, f"select * from {relation} {where}") or relation
    series: dict[tuple[str, str], _Series] = {}

    def add(metric, segment, monitor, kind, label, rows):
        s = series.setdefault((metric, segment), _Series(monitor, kind, label))
        for bucket, value, n in rows:
            d = _day(bucket)
            if d is not None and value is not None:
                s.points[d] = (float(value), int(n))

    # Rows per day (and per segment).
    if by:
        rows, totals = _counts_by(con, relation, where, day, segment_of)
        for bucket, segment, n in rows:
            add("volume", str(segment), "volume", COUNT, "rows", [(bucket, n, n)])
        add("volume", "", "volume", COUNT, "rows", [(b, n, n) for b, n in totals.items()])
    else:
        rows = con.execute(f"select {day}, count(*) from {relation} {where} group by 1").fetchall()
        add("volume", "", "volume", COUNT, "rows", [(b, n, n) for b, n in rows])
    # Numbers, the hour of day and ratios in one pass.
    selects, plan = [], []
    for c in numbers:
        x = f"base.{_q(c.name)}"
        selects += [
            f"avg({x})",
            f"avg({x} * {x})",
            f"avg(case when {x} = 0 then 1.0 else 0.0 end)",
            f"avg(case when {x} is null then 1.0 else 0.0 end)",
            f"count({x})",
        ]
        plan.append(("number", c))
    if column is not None and column.type == "timestamp" and spec.check("clock").on:
        hour, minute = (f"cast(substr({t}, {i}, 2) as integer)" for i in (12, 15))
        selects.append(f"avg({hour} + {minute} / 60.0)")
        plan.append(("clock", None))
    for ratio, num, den in zip(
        ratios, rewritten[1 : 1 + len(ratios)], rewritten[1 + len(ratios) :], strict=True
    ):
        selects += [f"sum({num})", f"sum({den})"]
        plan.append(("ratio", ratio))
    others = [c.name for c in source.columns if c.name not in source.clean_key]
    if source.clean_key and others and spec.check("duplicates").on:
        # Rows whose every value but the key repeats another row's of the day:
        # a day loaded twice with fresh ids; rare in real data, however small the day.
        joined = f" || {chr_function}(31) || ".join(
            f"case when base.{_q(c)} is null then 'n'"
            f" else 'v' || cast(base.{_q(c)} as {text_type}) end"
            for c in others
        )
        selects.append(f"count(distinct {joined})")
        plan.append(("duplicates", None))
    if selects:
        query = f"select {day}, count(*), {', '.join(selects)} from {relation} {where} group by 1"
        for bucket, n, *values in con.execute(query):
            # PostgreSQL averages exact numbers into Decimals: compute in floats.
            values = [float(v) if isinstance(v, Decimal) else v for v in values]
            i = 0
            for what, item in plan:
                if what == "number":
                    mean, square, zeros, nulls, count = values[i : i + 5]
                    i += 5
                    name = item.name
                    if mean is not None:
                        spread = max(square - mean * mean, 0.0) ** 0.5 if count > 1 else None
                        add(
                            f"{name}.mean",
                            "",
                            "level",
                            LEVEL,
                            f"mean {name}",
                            [(bucket, mean, count)],
                        )
                        if spread is not None:
                            add(
                                f"{name}.stddev",
                                "",
                                "spread",
                                LEVEL,
                                f"standard deviation of {name}",
                                [(bucket, spread, count)],
                            )
                        add(
                            f"{name}.zero_share",
                            "",
                            "zeros",
                            SHARE,
                            f"share of zeros in {name}",
                            [(bucket, zeros, count)],
                        )
                    if not item.required:
                        add(
                            f"{name}.null_share",
                            "",
                            "nulls",
                            SHARE,
                            f"share of nulls in {name}",
                            [(bucket, nulls, n)],
                        )
                elif what == "duplicates":
                    add(
                        "duplicates.share",
                        "",
                        "duplicates",
                        SHARE,
                        "share of rows repeating another row but for the key",
                        [(bucket, 1 - values[i] / n, n)],
                    )
                    i += 1
                elif what == "clock":
                    add(
                        f"{time}.hour",
                        "",
                        "clock",
                        CLOCK,
                        f"mean hour of {time}",
                        [(bucket, values[i], n)],
                    )
                    i += 1
                else:
                    num, den = values[i : i + 2]
                    i += 2
                    if num is not None and den:
                        add(
                            f"ratio:{item.name}",
                            "",
                            "ratios",
                            LEVEL,
                            item.name,
                            [(bucket, num / den, n)],
                        )
    # Category shares.
    categories = spec.check("categories")
    if categories.on:
        skip = set(categories.option("skip", ()))
        limit = categories.option("max_values", 30)
        for c in source.columns:
            if c.name in skip or c.name in source.clean_key or c.name == by:
                continue
            if not (c.values or c.references):
                continue
            x = f"base.{_q(c.name)}"
            # At most limit + 1 distinct values are read: enough to know the column has
            # too many to be a category (an id column stops after a few rows, not after
            # counting every distinct id of three years).
            distinct = con.execute(
                f"select count(*) from (select distinct {x} from {relation} {where}"
                f" and {x} is not null limit {int(limit) + 1}) as seen"
            ).fetchone()
            if not distinct[0] or distinct[0] > limit:
                continue
            rows, per_day = _counts_by(con, relation, where, day, x)
            values_seen = {str(v) for _, v, _ in rows}
            for value in sorted(values_seen):
                shares = {b: 0 for b in per_day}
                for bucket, v, n in rows:
                    if str(v) == value:
                        shares[bucket] = n
                add(
                    f"{c.name}={value}.share",
                    "",
                    "categories",
                    SHARE,
                    f"share of {c.name} = {value!r}",
                    [(b, shares[b] / per_day[b], per_day[b]) for b in per_day],
                )
    return series


# ------------------------------------------------------------------ checking


def _fmt(value: float, kind: str) -> str:
    if kind == COUNT:
        return f"{value:,.0f}"
    if kind == SHARE:
        return f"{value:.0%}" if value >= 0.01 or value == 0 else f"{value:.1%}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def _calendar(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _filled(points: dict, last: dt.date) -> dict:
    """A count series with the empty days between its first day and ``last`` as 0."""
    if not points:
        return {}
    return {d: points.get(d, (0.0, 0)) for d in _calendar(min(points), last)}


class _Checker:
    """The checks of one source in one build."""

    def __init__(self, source: Source, report: Report):
        self.source, self.report = source, report
        self.spec = source.monitors
        self.tbl = source.clean_table

    def observe(self, monitor, metric, segment, bucket, observed, rng, n, line, anomaly=None):
        expected, lower, upper = rng
        if anomaly is None:
            anomaly = not lower <= observed <= upper
        check = self.spec.check(monitor)
        self.report.observations.append(
            Observation(
                source=self.source.noun, tbl=self.tbl, monitor=monitor, metric=metric,
                segment=segment, bucket=bucket, observed=float(observed),
                expected=float(expected), lower=float(lower), upper=float(upper), n=int(n),
                status="anomaly" if anomaly else "ok", severity=check.severity, line=line,
            )
        )  # fmt: skip

    def where(self, segment: str) -> str:
        by = self.spec.check("volume").option("by")
        return f"{self.tbl} {by}={segment}" if segment else self.tbl

    # -------------------------------------------------------------- timed

    def timed(self, series: dict, published: dict) -> None:
        volume = series.get(("volume", ""))
        batch_days = sorted(volume.points) if volume else []
        if not batch_days:
            return
        first, last = batch_days[0], batch_days[-1]
        pub_days = sorted(dt.date.fromisoformat(b) for b in published.get(("volume", ""), {}))
        self.range(batch_days, volume, pub_days)
        if pub_days and last <= pub_days[-1]:
            checked = []
        elif pub_days:
            checked = _calendar(pub_days[-1] + dt.timedelta(days=1), last)[-MAX_CHECKED_DAYS:]
        else:
            checked = _calendar(last - dt.timedelta(days=FIRST_RUN_DAYS - 1), last)
            checked = [d for d in checked if d >= first]
        merged = {}
        for key, s in series.items():
            old = {dt.date.fromisoformat(b): p for b, p in published.get(key, {}).items() if b}
            points = {**old, **s.points}
            if s.kind == COUNT:
                points = _filled(points, last)
            merged[key] = _Series(s.monitor, s.kind, s.label, points)
        if checked:
            self.volume(merged, checked)
            self.metrics(merged, checked)
        if pub_days:
            self.history(merged, published, first, min(last, pub_days[-1]))

    def range(self, batch_days, volume, pub_days) -> None:
        if not self.spec.check("range").on:
            return
        rows = volume.points
        last = batch_days[-1]
        problems, outside = [], 0
        if pub_days and last < pub_days[-1]:
            problems.append(
                f"the data ends {last}, the published data ends {pub_days[-1]}:"
                " it went back in time"
            )
            outside += 1
        if pub_days:
            before = [d for d in batch_days if d < pub_days[0]]
            if before:
                n = sum(rows[d][1] for d in before)
                outside += n
                problems.append(
                    f"{n:,} rows on {len(before)} days before the published data"
                    f" (which starts {pub_days[0]}), earliest {before[0]}"
                )
        published = set(pub_days)
        for a, b in zip(batch_days, batch_days[1:], strict=False):
            gap = (b - a).days - 1
            if gap < ISOLATION_DAYS:
                continue
            early = [d for d in batch_days if d <= a and d not in published]
            late = [d for d in batch_days if d >= b and d not in published]
            side, days = ("before", early) if len(early) <= len(late) else ("after", late)
            if days and (not pub_days or side == "after" or days[-1] >= pub_days[0]):
                n = sum(rows[d][1] for d in days)
                outside += n
                problems.append(
                    f"{n:,} rows on {len(days)} days lie {gap} empty days {side} the rest"
                    f" ({days[0]}{'' if len(days) == 1 else ' to ' + str(days[-1])})"
                )
        line = f"{self.tbl}: " + ("; ".join(problems) if problems else "dates within range")
        self.observe("range", "range", "", str(last), outside, (0, 0, 0), 0, line, bool(problems))

    def volume(self, merged: dict, checked: list) -> None:
        check = self.spec.check("volume")
        if not check.on:
            return
        tuning = self.spec.tuning_for("volume")
        established = {}
        segments = [k for k in merged if k[0] == "volume" and k[1]]
        for (metric, segment), s in merged.items():
            if metric != "volume" or not segment or len(segments) < 2:
                continue  # one segment alone is the total
            training = training_window(s.points, checked[0], tuning)
            if band(training, checked[0], 1, COUNT, tuning) is None:
                seen = min(s.points) if s.points else checked[0]
                self.report.learning.append(
                    f"{self.where(segment)}: learning since {seen}"
                    f" ({len(training)} of {tuning.min_training_days} training days)"
                )
                continue
            established[segment] = s
            self._days("volume", "volume", segment, s, checked)
        total = merged.get(("volume", ""))
        if established:
            days = set().union(*(s.points for s in established.values()))
            points = {}
            for d in days:
                v = sum(s.points.get(d, (0, 0))[0] for s in established.values())
                points[d] = (v, int(v))
            total = _Series("volume", COUNT, "rows", points)
        if total is not None:
            self._days("volume", "volume", "", total, checked)

    def metrics(self, merged: dict, checked: list) -> None:
        for (metric, segment), s in sorted(merged.items(), key=lambda kv: kv[0]):
            if metric == "volume" or not self.spec.check(s.monitor).on:
                continue
            column = metric.split(".", 1)[0].split("=", 1)[0]
            if column in self.spec.check(s.monitor).option("skip", ()):
                continue
            self._days(s.monitor, metric, segment, s, checked)

    def _days(self, monitor, metric, segment, s: _Series, checked) -> None:
        tuning = self.spec.tuning_for(monitor)
        training = training_window(s.points, checked[0], tuning)
        for d in checked:
            if d not in s.points:
                continue  # no rows that day: the volume monitor speaks for it
            value, n = s.points[d]
            n_today = max(int(value), 1) if s.kind == COUNT else n
            expected = band(training, d, n_today, s.kind, tuning)
            if expected is None:
                if monitor != "volume":
                    self.report.learning.append(
                        f"{self.where(segment)} {s.label}: learning"
                        f" ({len(training)} of {tuning.min_training_days} training days)"
                    )
                return
            rng = (expected.expected, expected.lower, expected.upper)
            when = f" for a {WEEKDAYS[d.weekday()]}" if tuning.seasonality == "day_of_week" else ""
            unit = " rows" if s.kind == COUNT else ""
            what = (
                f"{_fmt(value, s.kind)}{unit}"
                if s.kind == COUNT
                else (f"{s.label} {_fmt(value, s.kind)}")
            )
            new = ""
            if monitor == "categories" and not any(v for v, _ in training.values()):
                new = " (a value not seen in training)"
            line = (
                f"{self.where(segment)} {d}: {what}{new}, expected"
                f" {_fmt(expected.lower, s.kind)}–{_fmt(expected.upper, s.kind)}{when}"
            )
            self.observe(monitor, metric, segment, str(d), value, rng, n, line)

    def history(self, merged: dict, published: dict, first: dt.date, last: dt.date) -> None:
        check = self.spec.check("history")
        if not check.on:
            return
        tolerance = check.option("tolerance", 0.01)
        for (metric, segment), old in sorted(published.items()):
            if segment or not (
                metric == "volume" or metric.endswith(".mean") or metric.startswith("ratio:")
            ):
                continue
            now = merged.get((metric, segment))
            changed = []
            for bucket, (value, _) in sorted(old.items()):
                d = dt.date.fromisoformat(bucket)
                if not first <= d <= last or value is None:
                    continue
                current = now.points.get(d, (0.0, 0))[0] if now else 0.0
                if metric != "volume" and (now is None or d not in now.points):
                    continue  # the day lost its rows: the volume line says so
                if abs(current - value) > tolerance * max(
                    abs(value), 1.0 if metric == "volume" else 0
                ):
                    changed.append((d, value, current))
            kind = COUNT if metric == "volume" else LEVEL
            label = "rows" if metric == "volume" else (now.label if now else metric)
            if changed:
                shown = "; ".join(
                    f"{d} {_fmt(new, kind)} (published {_fmt(was, kind)})"
                    for d, was, new in changed[:3]
                )
                more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
                line = (
                    f"{self.tbl}: {len(changed)} published days changed their {label}"
                    f" since the last publish: {shown}{more}"
                )
            else:
                line = f"{self.tbl}: published days keep their {label}"
            bucket = str(changed[0][0]) if changed else str(last)
            self.observe(
                "history",
                f"history:{metric}",
                "",
                bucket,
                len(changed),
                (0, 0, 0),
                0,
                line,
                bool(changed),
            )

    # -------------------------------------------------------------- untimed

    def untimed(self, con, target, settings) -> None:
        count = con.execute(f"select count(*) from {_q(self.tbl)}").fetchone()[0]
        self.report.candidates.append((self.source.noun, self.tbl, "rows", "", "", count, count))
        with target.published_attached(con) as problem:
            if problem:  # a recovery run: nothing to compare with
                self.report.learning.append(f"{self.tbl}: {problem}")
            if problem is None or problem:
                return
            try:
                if target.published_has(con, self.tbl):
                    self.rows(con, count, settings)
                    self.reference(con)
            except sqlite3.DatabaseError as exc:
                self.report.learning.append(
                    f"{self.tbl}: the published warehouse is broken ({exc})"
                )

    def rows(self, con, count: int, settings) -> None:
        check = self.spec.check("rows")
        if not check.on:
            return
        old = con.execute(f"select count(*) from published.{_q(self.tbl)}").fetchone()[0]
        factor = 1 + check.min_change
        slack = settings.row_change_min_rows
        lower = max(0.0, min(old / factor, old - slack))
        upper = max(old * factor, old + slack)
        line = f"{self.tbl}: {count:,} rows, expected {lower:,.0f}–{upper:,.0f} (published {old:,})"
        self.observe("rows", "rows", "", "", count, (old, lower, upper), count, line)

    def reference(self, con) -> None:
        check = self.spec.check("reference")
        key = self.source.clean_key
        if not check.on or not key:
            return
        factor = check.option("max_change", 3.0)
        on = " and ".join(f"new.{_q(k)} = old.{_q(k)}" for k in key)
        shown_key = " || '/' || ".join(f"new.{_q(k)}" for k in key)
        numbers = [c for c in self.source.columns if c.type in NUMERIC and c.name not in key]
        for c in numbers:
            x, y = f"new.{_q(c.name)}", f"old.{_q(c.name)}"
            rows = con.execute(
                f"select {shown_key}, {y}, {x} from {_q(self.tbl)} as new"
                f" join published.{_q(self.tbl)} as old on {on}"
                f" where ({x} is null) != ({y} is null) or abs({x}) > ? * abs({y})"
                f" or abs({y}) > ? * abs({x})",
                (factor, factor),
            ).fetchall()
            total = con.execute(
                f"select count(*) from {_q(self.tbl)} as new"
                f" join published.{_q(self.tbl)} as old on {on}"
            ).fetchone()[0]
            if rows:
                shown = "; ".join(f"{k}: {a} → {b}" for k, a, b in rows[:3])
                line = (
                    f"{self.tbl}: {len(rows)} of {total:,} rows changed {c.name} more than"
                    f" {factor:g}× since the last publish ({shown})"
                )
            else:
                line = f"{self.tbl}: {c.name} within {factor:g}× of the published values"
            self.observe(
                "reference",
                f"reference:{c.name}",
                "",
                "",
                len(rows),
                (0, 0, 0),
                total,
                line,
                bool(rows),
            )
        vanished = con.execute(
            f"select count(*) from published.{_q(self.tbl)} as old"
            f" where not exists (select 1 from {_q(self.tbl)} as new where {on})"
        ).fetchone()[0]
        old_total = con.execute(f"select count(*) from published.{_q(self.tbl)}").fetchone()[0]
        share = vanished / old_total if old_total else 0.0
        line = f"{self.tbl}: {vanished:,} of {old_total:,} published rows ({share:.0%}) are gone"
        self.observe("reference", "reference:gone", "", "", share, (0, 0, 0.1), old_total, line)


# ------------------------------------------------------------------ the whole build


def check_build(settings, target, build, sources: dict[str, Source]) -> Report:
    """Measure and check every source of a build warehouse (on its
    :class:`dq.targets.Target`) against the history."""
    report = Report()
    con = target.connect(build)
    try:
        with history.connect(settings.history_db) as hist:
            for noun, source in sources.items():
                if not source.monitors.enabled:
                    continue
                checker = _Checker(source, report)
                if source.monitors.time:
                    series = measure(
                        con, sources, source, target.chr_function, target.text_type,
                        target.stage_rows,
                    )  # fmt: skip
                    for (metric, segment), s in series.items():
                        report.candidates += [
                            (noun, source.clean_table, metric, segment, str(d), v, n)
                            for d, (v, n) in s.points.items()
                        ]
                    checker.timed(series, history.published_series(hist, noun))
                else:
                    checker.untimed(con, target, settings)
    finally:
        con.close()
    return report


# ------------------------------------------------------------------ Great Expectations


def write_checks(path: Path, observations: list[Observation]) -> Path:
    """The run's checks as a table GX validates (``check_id`` = position)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        with con:
            con.execute(
                "create table checks (check_id integer primary key, source text, tbl text,"
                " monitor text, metric text, segment text, bucket text, observed real,"
                " expected real, lower real, upper real, status text, severity text, line text)"
            )
            con.executemany(
                "insert into checks values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (i, o.source, o.tbl, o.monitor, o.metric, o.segment, o.bucket, o.observed,
                     o.expected, o.lower, o.upper, o.status, o.severity, o.line)
                    for i, o in enumerate(observations)
                ),
            )  # fmt: skip
    finally:
        con.close()
    return path


def expectations(observations: list[Observation]) -> dict[str, list]:
    """One GX expectation per check, grouped in a suite per source: the observed
    value must lie in the expected range. A stop check is critical, a warn check
    a warning. The description is the check's line, HTML-escaped: it may quote
    CSV values, and GX puts a description into the page as markup."""
    import html

    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    suites: dict[str, list] = defaultdict(list)
    for i, o in enumerate(observations):
        suites[f"monitors_{o.source}"].append(
            gxe.ExpectColumnMeanToBeBetween(
                column="observed",
                min_value=o.lower,
                max_value=o.upper,
                row_condition=Column("check_id") == i,
                severity="critical" if o.severity == "stop" else "warning",
                description=html.escape(f"{o.monitor}: {o.line}", quote=True),
                meta={"monitor": o.monitor, "metric": o.metric, "bucket": o.bucket},
            )
        )
    return dict(suites)


def anomaly_lines(run) -> list[str]:
    """One readable line per anomaly a run's monitors found, stop first: what the
    summary and the notifications print."""
    step = run.step("monitor")
    found = step.detail.get("anomalies", []) if step else []
    return [f"{'STOP' if a['severity'] == 'stop' else 'warn'}  {a['line']}" for a in found]
