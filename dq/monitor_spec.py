"""The ``monitors:`` section of a source declaration, read and checked.

Every source is monitored with defaults; ``monitors:`` only says what differs
(docs/sources.md, README "Anomaly monitors")::

    monitors:
      time: ordered_at              # puts rows on days; items: orders.ordered_at
      volume: {by: location_id}     # also per store; new stores are learnt first
      ratios:
        - name: tax matches the store's rate
          numerator: tax_paid
          denominator: subtotal * stores.tax_rate
      spread: {severity: stop}
      nulls: off

:func:`parse` is called by :mod:`dq.sources` with the declaration's reader, so
a mistake is reported with its file, line and column like any other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from dq.anomaly import SEASONALITIES, Tuning
from dq.contracts import Problem, _Mapping

SEVERITIES = ("stop", "warn")


@dataclass(frozen=True)
class Check:
    """How one monitor reacts: on or off, what an anomaly does, how sensitive it is."""

    on: bool = True
    severity: str = "stop"
    sensitivity: float | None = None  # None: the source's
    min_change: float = 0.5
    options: tuple[tuple[str, object], ...] = ()

    def option(self, name: str, default=None):
        return dict(self.options).get(name, default)


#: Every monitor, its defaults, the options it takes beyond severity,
#: sensitivity and min_change, and what it watches (the README table).
MONITORS: dict[str, tuple[Check, dict, str]] = {
    "volume": (Check(min_change=0.5), {"by": str}, "rows per day (and per `by` value)"),
    "level": (Check(min_change=0.45), {"skip": list}, "mean of each number column per day"),
    "spread": (
        Check(severity="warn", min_change=0.5),
        {"skip": list},
        "standard deviation of each number column per day",
    ),
    "zeros": (Check(severity="warn", min_change=0.1), {"skip": list}, "share of zeros per day"),
    "nulls": (Check(severity="warn", min_change=0.1), {"skip": list}, "share of nulls per day"),
    "categories": (
        Check(min_change=0.2),
        {"skip": list, "max_values": int},
        "share of each value of a category column per day; new and vanished values",
    ),
    "duplicates": (
        Check(min_change=0.1),
        {},
        "share of rows that repeat another row of the day in everything but the key",
    ),
    "clock": (Check(), {}, "mean hour of day of the time column per day"),
    "ratios": (Check(min_change=0.25), {}, "declared ratios (sum of numerator / denominator)"),
    "range": (Check(), {}, "days before the published data, isolated days, data going back"),
    "history": (
        Check(min_change=0.0),
        {"tolerance": float},
        "published days whose rows or means changed",
    ),
    "rows": (Check(min_change=0.5), {}, "row count of a source without a time column"),
    "reference": (
        Check(min_change=0.0),
        {"max_change": float},
        "each row of a keyed source without a time column vs its published version",
    ),
}


@dataclass(frozen=True)
class Ratio:
    """A declared ratio: ``sum(numerator) / sum(denominator)`` per day."""

    name: str
    numerator: str
    denominator: str


@dataclass(frozen=True)
class Monitors:
    """What is monitored on one source, and how."""

    enabled: bool = True
    time: str | None = None  # a clean column, or "<source>.<column>" through a reference
    tuning: Tuning = Tuning()
    checks: dict[str, Check] = field(default_factory=lambda: {k: v[0] for k, v in MONITORS.items()})
    ratios: tuple[Ratio, ...] = ()

    def check(self, name: str) -> Check:
        return self.checks[name]

    def tuning_for(self, name: str) -> Tuning:
        check = self.checks[name]
        return dataclasses.replace(
            self.tuning,
            sensitivity=check.sensitivity or self.tuning.sensitivity,
            min_change=check.min_change,
        )

    def as_json(self) -> dict:
        return {
            "enabled": self.enabled,
            "time": self.time,
            "tuning": dataclasses.asdict(self.tuning),
            "checks": {k: dataclasses.asdict(v) for k, v in self.checks.items()},
            "ratios": [dataclasses.asdict(r) for r in self.ratios],
        }


_TOP = {"time", "seasonality", "training_days", "min_training_days", "sensitivity", "ratios"}


def parse(reader, doc: _Mapping) -> Monitors:
    """The ``monitors`` section of ``doc`` (defaults when absent); problems go to
    ``reader`` with their line and column."""
    if "monitors" not in doc:
        return Monitors()
    spec = doc["monitors"]
    if spec is False or spec == "off":
        return Monitors(enabled=False)
    if not isinstance(spec, _Mapping):
        reader.at(doc, "monitors", "monitors must be off or a mapping (see docs/sources.md)")
        return Monitors()
    known = _TOP | set(MONITORS)
    for extra in sorted(set(spec) - known, key=str):
        reader.at(
            spec,
            extra,
            f"unknown monitor setting {extra!r}; expected one of {', '.join(sorted(known))}",
        )
    time = spec.get("time")
    if time is not None and not (isinstance(time, str) and time.strip()):
        reader.at(spec, "time", "time must be a column name (or <source>.<column>)")
        time = None
    tuning = Tuning()
    seasonality = spec.get("seasonality", tuning.seasonality)
    if seasonality not in SEASONALITIES:
        reader.at(spec, "seasonality", f"seasonality must be one of {', '.join(SEASONALITIES)}")
        seasonality = tuning.seasonality
    numbers = {}
    for name, low in (("training_days", 7), ("min_training_days", 3), ("sensitivity", 0.5)):
        value = spec.get(name, getattr(tuning, name))
        if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
            reader.at(spec, name, f"{name} must be a number of at least {low}")
            value = getattr(tuning, name)
        numbers[name] = value
    if numbers["min_training_days"] > numbers["training_days"]:
        reader.at(spec, "min_training_days", "min_training_days exceeds training_days")
    tuning = Tuning(
        seasonality=seasonality,
        training_days=int(numbers["training_days"]),
        min_training_days=int(numbers["min_training_days"]),
        sensitivity=float(numbers["sensitivity"]),
    )
    checks = {name: _check(reader, spec, name) for name in MONITORS}
    return Monitors(
        enabled=True,
        time=time.strip() if time else None,
        tuning=tuning,
        checks=checks,
        ratios=_ratios(reader, spec),
    )


def _check(reader, spec: _Mapping, name: str) -> Check:
    default, options, _ = MONITORS[name]
    if name == "ratios":
        return default  # the list itself is read by _ratios
    if name not in spec:
        return default
    value = spec[name]
    if value is False or value == "off":
        return dataclasses.replace(default, on=False)
    if not isinstance(value, _Mapping):
        reader.at(spec, name, f"{name} must be off or a mapping (severity, sensitivity, ...)")
        return default
    allowed = {"severity", "sensitivity", "min_change"} | set(options)
    for extra in sorted(set(value) - allowed, key=str):
        reader.at(
            value,
            extra,
            f"{name}: unknown setting {extra!r}; expected one of {', '.join(sorted(allowed))}",
        )
    severity = value.get("severity", default.severity)
    if severity not in SEVERITIES:
        reader.at(value, "severity", f"{name}: severity must be stop or warn")
        severity = default.severity
    sensitivity = value.get("sensitivity")
    if sensitivity is not None and (
        isinstance(sensitivity, bool)
        or not isinstance(sensitivity, int | float)
        or sensitivity <= 0
    ):
        reader.at(value, "sensitivity", f"{name}: sensitivity must be a positive number")
        sensitivity = None
    min_change = value.get("min_change", default.min_change)
    if isinstance(min_change, bool) or not isinstance(min_change, int | float) or min_change < 0:
        reader.at(value, "min_change", f"{name}: min_change must be a number of at least 0")
        min_change = default.min_change
    picked = []
    for option, kind in options.items():
        if option not in value:
            continue
        given = value[option]
        ok = isinstance(given, kind) and not isinstance(given, bool)
        if kind is float:
            ok = isinstance(given, int | float) and not isinstance(given, bool) and given >= 0
        if kind is list:
            ok = isinstance(given, list) and all(isinstance(v, str) for v in given)
        if not ok:
            reader.at(value, option, f"{name}: {option} must be {kind.__name__}")
            continue
        picked.append((option, tuple(given) if isinstance(given, list) else given))
    return Check(
        on=True,
        severity=severity,
        sensitivity=float(sensitivity) if sensitivity else None,
        min_change=float(min_change),
        options=tuple(picked),
    )


def _ratios(reader, spec: _Mapping) -> tuple[Ratio, ...]:
    items = spec.get("ratios", []) or []
    if items == "off":
        return ()
    if not isinstance(items, list):
        reader.at(spec, "ratios", "ratios must be a list of {name, numerator, denominator}")
        return ()
    ratios = []
    for position, item in enumerate(items):
        keys = {"name", "numerator", "denominator"}
        if (
            not isinstance(item, _Mapping)
            or set(item) != keys
            or not all(isinstance(item[k], str) and item[k].strip() for k in keys)
        ):
            line, column = items.marks[position]
            reader.problems.append(
                Problem(reader.path, line, column, "a ratio is {name, numerator, denominator}")
            )
            continue
        if any(";" in item[k] for k in ("numerator", "denominator")):
            reader.at(item, "numerator", "a ratio's numerator and denominator are SQL (no ';')")
            continue
        ratios.append(
            Ratio(item["name"].strip(), item["numerator"].strip(), item["denominator"].strip())
        )
    names = [r.name for r in ratios]
    if len(set(names)) != len(names):
        reader.at(spec, "ratios", "two ratios have the same name")
    return tuple(ratios)


def cross_check(source, sources: dict) -> list[tuple[str, str]]:
    """Problems of a source's monitors that need the other declarations:
    ``(setting, message)`` pairs, ``setting`` a key of ``monitors``."""
    spec: Monitors = source.monitors
    if not spec.enabled:
        return []
    problems = []
    referenced = {c.references for c in source.columns if c.references}
    if spec.time:
        noun, _, name = spec.time.rpartition(".")
        owner = sources.get(noun) if noun else source
        column = next((c for c in owner.columns if c.name == name), None) if owner else None
        if noun and noun not in referenced:
            problems.append(("time", f"time {spec.time}: {source.noun} does not reference {noun}"))
        elif column is None or column.type not in ("date", "timestamp"):
            problems.append(
                ("time", f"time {spec.time} must name a date or timestamp column (clean name)")
            )
    elif spec.ratios or spec.check("volume").option("by"):
        problems.append(("time", "volume by and ratios are per day: declare time"))
    by = spec.check("volume").option("by")
    if by:
        noun, _, name = by.rpartition(".")
        owner = sources.get(noun) if noun else source
        if noun and noun not in referenced:
            problems.append(("volume", f"volume by {by}: {source.noun} does not reference {noun}"))
        elif owner is None or name not in {c.name for c in owner.columns}:
            problems.append(("volume", f"volume by {by}: no column with that clean name"))
    for ratio in spec.ratios:
        for noun, _ in _dotted(ratio.numerator + " " + ratio.denominator):
            if noun not in referenced:
                problems.append(
                    ("ratios", f"ratio {ratio.name!r}: {source.noun} does not reference {noun}")
                )
    return problems


def _dotted(expression: str):
    import re

    return re.findall(r"\b([a-z][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\b", expression)
