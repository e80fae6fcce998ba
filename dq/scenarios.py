"""Silent defects and clean next-day snapshots, to judge the anomaly monitors.

A *snapshot* is a raw folder as the source would deliver it on a given day:
everything the jafgen simulator (:mod:`dq.data`) produced up to that day. A
*clean next-day scenario* publishes yesterday's snapshot and then runs today's,
which only adds new days. A *defect scenario* runs today's snapshot after one
defect function rewrote it. Every defect changes rows so that **every row stays
individually valid** against ``seeds/*.yml`` (types, unique keys, references,
``subtotal + tax_paid = order_total``, ``min: 0``, ``max: now``): no row rule and
no other gate can see it; only a monitor that compares days can. Same inputs,
same bytes: new ids come from a generator seeded with the defect's name.

``python -m dq.quality_eval`` (``make quality-eval``) runs them all;
``docs/quality-eval.md`` describes each kind.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from dq.data import TABLES

#: jafgen writes timestamps with ``datetime.isoformat()``.
TIMESTAMP = "%Y-%m-%dT%H:%M:%S"
#: The simulator's first day (``jafgen.curves.Day.EPOCH``).
FIRST_DAY = dt.date(2018, 9, 1)


# ------------------------------------------------------------------ raw folders


@dataclass
class Table:
    """One raw CSV as text cells: its header and its data rows."""

    header: list[str]
    rows: list[list[str]]

    def col(self, name: str) -> int:
        """The index of column ``name``."""
        return self.header.index(name)

    def column(self, name: str) -> list[str]:
        """Every value of column ``name``, in file order."""
        i = self.col(name)
        return [row[i] for row in self.rows]


def read_folder(folder: Path) -> dict[str, Table]:
    """The six raw tables of a folder (``raw_<table>.csv``), by table name."""
    tables = {}
    for name in TABLES:
        with open(Path(folder) / f"raw_{name}.csv", newline="", encoding="utf-8") as fh:
            header, *rows = csv.reader(fh)
        tables[name] = Table(header, rows)
    return tables


def write_folder(tables: dict[str, Table], out_dir: Path) -> dict[str, int]:
    """Write the tables as :mod:`dq.data` does (header, ``\\n`` line ends, minimal
    quoting), so an unchanged table keeps its bytes. Returns data rows per file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, table in tables.items():
        with open(out_dir / f"raw_{name}.csv", "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, lineterminator="\n").writerows([table.header, *table.rows])
        counts[f"raw_{name}"] = len(table.rows)
    return counts


def day_of(timestamp: str) -> str:
    """The ISO day of a jafgen timestamp (``2018-09-01T11:21:00`` -> ``2018-09-01``)."""
    return timestamp[:10]


def order_days(folder: Path) -> list[str]:
    """The days that have orders in a raw folder, oldest first."""
    return sorted(set(map(day_of, read_folder(folder)["orders"].column("ordered_at"))))


def _iso(day: dt.date | str) -> str:
    return dt.date.fromisoformat(str(day)).isoformat()


# ------------------------------------------------------------------ snapshots


def _truncate(tables: dict[str, Table], last_day: str) -> None:
    """Keep what exists on ``last_day``, in place (see :func:`snapshot`)."""
    orders, items = tables["orders"], tables["items"]
    at, oid = orders.col("ordered_at"), orders.col("id")
    orders.rows = [r for r in orders.rows if day_of(r[at]) <= last_day]
    kept = {r[oid] for r in orders.rows}
    items.rows = [r for r in items.rows if r[items.col("order_id")] in kept]
    customers = tables["customers"]
    buyers = {r[orders.col("customer")] for r in orders.rows}
    customers.rows = [r for r in customers.rows if r[customers.col("id")] in buyers]
    stores = tables["stores"]
    opened = stores.col("opened_at")
    stores.rows = [r for r in stores.rows if day_of(r[opened]) <= last_day]


def snapshot(sim_dir: Path, out_dir: Path, last_day: dt.date | str) -> dict[str, int]:
    """Write into ``out_dir`` the raw folder the source delivers on ``last_day``.

    - orders with an ``ordered_at`` day up to ``last_day``, and their items;
    - the customers who exist by then: jafgen creates a customer when they place
      their first order (``Simulation.customers`` is filled from the orders), so
      these are the customers with an order up to ``last_day``;
    - the stores opened by then (jafgen lists every store up front, with future
      opening days; a shop's system would not know a store before it opens);
    - products and supplies unchanged.

    Rows keep the simulator's order and bytes: a snapshot of a longer simulation
    equals the shorter simulation with the same seed, except stores not yet open.
    Returns data rows per file.
    """
    tables = read_folder(sim_dir)
    _truncate(tables, _iso(last_day))
    return write_folder(tables, out_dir)


# ------------------------------------------------------------------ defect helpers


class NotApplicable(ValueError):
    """The clean folder lacks what a defect needs (e.g. two stores trading)."""


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _newest(tables: dict[str, Table], back: int = 0) -> str:
    """The newest day with orders (``back`` days with orders before it)."""
    days = sorted(set(map(day_of, tables["orders"].column("ordered_at"))))
    if len(days) <= back:
        raise NotApplicable(f"needs {back + 1} days with orders, found {len(days)}")
    return days[-1 - back]


def _on_day(tables: dict[str, Table], day: str) -> list[list[str]]:
    """The order rows of ``day`` (the very lists: editing them edits the table)."""
    at = tables["orders"].col("ordered_at")
    return [r for r in tables["orders"].rows if day_of(r[at]) == day]


def _drop_orders(tables: dict[str, Table], ids: set[str]) -> None:
    """Remove orders and their items; their customers stay (a customer row is valid alone)."""
    orders, items = tables["orders"], tables["items"]
    orders.rows = [r for r in orders.rows if r[orders.col("id")] not in ids]
    items.rows = [r for r in items.rows if r[items.col("order_id")] not in ids]


def _rates(tables: dict[str, Table]) -> dict[str, Decimal]:
    stores = tables["stores"]
    return {r[stores.col("id")]: Decimal(r[stores.col("tax_rate")]) for r in stores.rows}


def _tax(subtotal_cents: int, rate: Decimal) -> int:
    """Tax in cents as jafgen computes it: truncated, never rounded up."""
    return int(subtotal_cents * rate)


def _set_amounts(tables: dict[str, Table], row: list[str], subtotal: int, tax: int) -> None:
    """Set an order's amounts; the total is always their sum (the declared rule)."""
    orders = tables["orders"]
    row[orders.col("subtotal")] = str(subtotal)
    row[orders.col("tax_paid")] = str(tax)
    row[orders.col("order_total")] = str(subtotal + tax)


def _amount(tables: dict[str, Table], row: list[str], name: str) -> int:
    return int(row[tables["orders"].col(name)])


def _retax(tables: dict[str, Table], row: list[str], subtotal: int, rate=None) -> None:
    """New subtotal, taxed at the order's store rate (or ``rate``)."""
    if rate is None:
        rate = _rates(tables)[row[tables["orders"].col("store_id")]]
    _set_amounts(tables, row, subtotal, _tax(subtotal, rate))


# ------------------------------------------------------------------ the defects
# Each takes the tables of a clean "today" folder and a seeded generator, changes
# rows in place and returns one line saying what it changed.


def day_missing(tables: dict[str, Table], rng: random.Random) -> str:
    """The older of two new days never arrives: its orders and items are missing."""
    del rng
    day = _newest(tables, back=1)
    ids = {r[tables["orders"].col("id")] for r in _on_day(tables, day)}
    _drop_orders(tables, ids)
    return f"{day}: all {len(ids)} orders and their items missing"


def day_loaded_twice(tables: dict[str, Table], rng: random.Random) -> str:
    """The newest day is loaded twice: a copy of its orders and items with fresh ids."""
    orders, items = tables["orders"], tables["items"]
    day = _newest(tables)
    new_id = {}
    for row in _on_day(tables, day):
        copy = list(row)
        copy[orders.col("id")] = new_id[row[orders.col("id")]] = _uuid(rng)
        orders.rows.append(copy)
    copies = []
    for row in items.rows:
        if row[items.col("order_id")] in new_id:
            copy = list(row)
            copy[items.col("id")] = _uuid(rng)
            copy[items.col("order_id")] = new_id[row[items.col("order_id")]]
            copies.append(copy)
    items.rows.extend(copies)
    return f"{day}: {len(new_id)} orders and {len(copies)} items loaded a second time"


def table_10x(tables: dict[str, Table], rng: random.Random) -> str:
    """Customers ten times larger: nine well-formed garbage customers per real one
    (fresh ids, names recombined from real first and last names)."""
    customers = tables["customers"]
    names = [r[customers.col("name")].split() for r in customers.rows]
    firsts, lasts = sorted({n[0] for n in names}), sorted({n[-1] for n in names})
    before = len(customers.rows)
    for _ in range(9 * before):
        row = [""] * len(customers.header)
        row[customers.col("id")] = _uuid(rng)
        row[customers.col("name")] = f"{rng.choice(firsts)} {rng.choice(lasts)}"
        customers.rows.append(row)
    return f"customers: {before} -> {len(customers.rows)} rows"


#: slow_leak: days affected and the share lost on the oldest and the newest of them.
LEAK_DAYS, LEAK_FROM, LEAK_TO = 7, 0.05, 0.50


def slow_leak(tables: dict[str, Table], rng: random.Random) -> str:
    """The newest 7 days lose a growing share of their orders (5 % to 50 %) and their
    items. The six older days were already published yesterday, in full."""
    oid = tables["orders"].col("id")
    lost, shares = set(), []
    for k in range(LEAK_DAYS):
        day = _newest(tables, back=LEAK_DAYS - 1 - k)
        share = LEAK_FROM + (LEAK_TO - LEAK_FROM) * k / (LEAK_DAYS - 1)
        rows = _on_day(tables, day)
        lost |= {r[oid] for r in rng.sample(rows, round(share * len(rows)))}
        shares.append(f"{share:.0%}")
    _drop_orders(tables, lost)
    return f"last {LEAK_DAYS} days lose {'/'.join(shares)} of their orders ({len(lost)} orders)"


def dollars_not_cents(tables: dict[str, Table], rng: random.Random) -> str:
    """The newest day's amounts arrive in dollars, not cents (rounded; total = sum)."""
    del rng
    day = _newest(tables)
    rows = _on_day(tables, day)
    for row in rows:
        subtotal, tax = (_amount(tables, row, c) for c in ("subtotal", "tax_paid"))
        _set_amounts(tables, row, (subtotal + 50) // 100, (tax + 50) // 100)
    return f"{day}: amounts of {len(rows)} orders divided by 100"


#: level_jump: the factor on the newest day's subtotals.
LEVEL_FACTOR = Decimal("1.5")


def level_jump(tables: dict[str, Table], rng: random.Random) -> str:
    """The newest day's subtotals are 50 % higher (a price change the products
    table does not show); tax at the store's rate, total = sum."""
    del rng
    day = _newest(tables)
    rows = _on_day(tables, day)
    for row in rows:
        _retax(tables, row, int(_amount(tables, row, "subtotal") * LEVEL_FACTOR))
    return f"{day}: subtotals of {len(rows)} orders x{LEVEL_FACTOR}"


def spread_jump(tables: dict[str, Table], rng: random.Random) -> str:
    """The newest day's subtotals spread out, same mean: in random pairs of orders
    one takes 90 % of the other's subtotal (the day's sum is unchanged)."""
    day = _newest(tables)
    rows = _on_day(tables, day)
    rng.shuffle(rows)
    for a, b in zip(rows[::2], rows[1::2], strict=False):
        moved = _amount(tables, b, "subtotal") * 9 // 10
        _retax(tables, a, _amount(tables, a, "subtotal") + moved)
        _retax(tables, b, _amount(tables, b, "subtotal") - moved)
    return f"{day}: subtotals of {len(rows)} orders spread out in pairs (sum unchanged)"


def category_collapse(tables: dict[str, Table], rng: random.Random) -> str:
    """Every order of the newest day is booked on one existing store (the first
    listed); tax at that store's rate, so amounts stay consistent."""
    del rng
    orders, day = tables["orders"], _newest(tables)
    rows = _on_day(tables, day)
    if len({r[orders.col("store_id")] for r in rows}) < 2:
        raise NotApplicable(f"category_collapse needs two stores trading on {day}")
    store = tables["stores"].rows[0][tables["stores"].col("id")]
    for row in rows:
        row[orders.col("store_id")] = store
        _retax(tables, row, _amount(tables, row, "subtotal"))
    return f"{day}: all {len(rows)} orders booked on store {store[:8]}"


#: new_value_takes_over: the new product and the share of the newest day's items it takes.
NEW_PRODUCT = {
    "sku": "JAF-006",
    "name": "the mystery jaffle",
    "type": "jaffle",
    "price": "1200",
    "description": "a jaffle nobody ordered",
}
TAKEOVER_SHARE = 0.8


def new_value_takes_over(tables: dict[str, Table], rng: random.Random) -> str:
    """A new (valid) product appears and takes 80 % of the newest day's items."""
    products, items = tables["products"], tables["items"]
    products.rows.append([NEW_PRODUCT[h] for h in products.header])
    day = _newest(tables)
    day_orders = {r[tables["orders"].col("id")] for r in _on_day(tables, day)}
    rows = [r for r in items.rows if r[items.col("order_id")] in day_orders]
    for row in rng.sample(rows, round(TAKEOVER_SHARE * len(rows))):
        row[items.col("sku")] = NEW_PRODUCT["sku"]
    return f"{day}: {TAKEOVER_SHARE:.0%} of {len(rows)} items are the new {NEW_PRODUCT['sku']}"


def zero_share_jump(tables: dict[str, Table], rng: random.Random) -> str:
    """No tax on the newest day: ``tax_paid`` is 0 and the total is the subtotal."""
    del rng
    day = _newest(tables)
    rows = _on_day(tables, day)
    for row in rows:
        _set_amounts(tables, row, _amount(tables, row, "subtotal"), 0)
    return f"{day}: tax_paid 0 on all {len(rows)} orders"


#: timezone_shift: hours added to the newest day's timestamps.
SHIFT_HOURS = 7


def timezone_shift(tables: dict[str, Table], rng: random.Random) -> str:
    """The newest day's timestamps are 7 hours late (local time read as UTC the
    wrong way); evening orders move past midnight. Still long before now."""
    del rng
    orders, day = tables["orders"], _newest(tables)
    at = orders.col("ordered_at")
    rows = _on_day(tables, day)
    for row in rows:
        shifted = dt.datetime.strptime(row[at], TIMESTAMP) + dt.timedelta(hours=SHIFT_HOURS)
        if shifted >= dt.datetime.now():
            raise NotApplicable(f"{row[at]} +{SHIFT_HOURS} h would be in the future")
        row[at] = shifted.strftime(TIMESTAMP)
    return f"{day}: {len(rows)} timestamps +{SHIFT_HOURS} h"


def year_typo(tables: dict[str, Table], rng: random.Random) -> str:
    """The newest day's orders are dated a year too early: before the data starts."""
    del rng
    orders, day = tables["orders"], _newest(tables)
    first = min(map(day_of, orders.column("ordered_at")))
    at = orders.col("ordered_at")
    rows, typed = _on_day(tables, day), set()
    for row in rows:
        stamp = dt.datetime.strptime(row[at], TIMESTAMP)
        while stamp.date().isoformat() >= first:
            day_in_month = min(stamp.day, 28) if stamp.month == 2 else stamp.day
            stamp = stamp.replace(year=stamp.year - 1, day=day_in_month)
        row[at] = stamp.strftime(TIMESTAMP)
        typed.add(day_of(row[at]))
    return f"{day}: {len(rows)} orders dated {', '.join(sorted(typed))} (data starts {first})"


#: back_in_time: how many days before the clean newest day today's folder ends.
BACK_DAYS = 3


def back_in_time(tables: dict[str, Table], rng: random.Random) -> str:
    """Today's extract ends 3 days before its newest day: 2 days before what
    was published yesterday (an old extract delivered again)."""
    del rng
    newest = dt.date.fromisoformat(_newest(tables))
    last = (newest - dt.timedelta(days=BACK_DAYS)).isoformat()
    _truncate(tables, last)
    return f"ends on {last} instead of {newest.isoformat()}"


#: tax_rate_mismatch: added to each store's rate for the newest day's tax.
RATE_OFFSET = Decimal("0.02")


def tax_rate_mismatch(tables: dict[str, Table], rng: random.Random) -> str:
    """The newest day's tax is computed at the store's rate + 2 points (6 % -> 8 %);
    totals still add up."""
    del rng
    day, rates = _newest(tables), _rates(tables)
    store = tables["orders"].col("store_id")
    rows = _on_day(tables, day)
    for row in rows:
        _retax(tables, row, _amount(tables, row, "subtotal"), rates[row[store]] + RATE_OFFSET)
    return f"{day}: tax of {len(rows)} orders at the store rate +{RATE_OFFSET}"


def swapped_amounts(tables: dict[str, Table], rng: random.Random) -> str:
    """The newest day's subtotal and tax_paid are swapped (their sum, the total, is not)."""
    del rng
    day = _newest(tables)
    rows = _on_day(tables, day)
    for row in rows:
        subtotal, tax = (_amount(tables, row, c) for c in ("subtotal", "tax_paid"))
        _set_amounts(tables, row, subtotal=tax, tax=subtotal)
    return f"{day}: subtotal and tax_paid swapped on {len(rows)} orders"


def reference_price_change(tables: dict[str, Table], rng: random.Random) -> str:
    """Every product's price is 100 times higher (dollars read as cents upstream)."""
    del rng
    products = tables["products"]
    price = products.col("price")
    for row in products.rows:
        row[price] = str(int(row[price]) * 100)
    return f"products: {len(products.rows)} prices x100"


def reference_rate_change(tables: dict[str, Table], rng: random.Random) -> str:
    """The first store's tax rate is ten times lower (0.06 -> 0.006). Only the
    reference table changes: the orders were taxed at the true rate, as a point of
    sale taxes them, so this defect is the reference extract alone."""
    del rng
    stores = tables["stores"]
    row, rate = stores.rows[0], stores.col("tax_rate")
    before = row[rate]
    row[rate] = str(Decimal(before) / 10)
    return f"store {row[stores.col('name')]}: tax_rate {before} -> {row[rate]}"


# ------------------------------------------------------------------ the corpus


@dataclass(frozen=True)
class Defect:
    """One kind of silent defect: its family and the function that makes it."""

    name: str
    family: str  # volume | distribution | time | consistency
    make: Callable[[dict[str, Table], random.Random], str]
    #: new days today's clean folder needs (day_missing drops the first of two)
    new_days: int = 1

    @property
    def doc(self) -> str:
        """The first sentence of the defect function's docstring."""
        paragraph = " ".join((self.make.__doc__ or "").strip().split("\n\n")[0].split())
        return paragraph.split(". ", maxsplit=1)[0].rstrip(".") + "."


DEFECTS: dict[str, Defect] = {
    d.name: d
    for d in (
        Defect("day_missing", "volume", day_missing, new_days=2),
        Defect("day_loaded_twice", "volume", day_loaded_twice),
        Defect("table_10x", "volume", table_10x),
        Defect("slow_leak", "volume", slow_leak),
        Defect("dollars_not_cents", "distribution", dollars_not_cents),
        Defect("level_jump", "distribution", level_jump),
        Defect("spread_jump", "distribution", spread_jump),
        Defect("category_collapse", "distribution", category_collapse),
        Defect("new_value_takes_over", "distribution", new_value_takes_over),
        Defect("zero_share_jump", "distribution", zero_share_jump),
        Defect("timezone_shift", "time", timezone_shift),
        Defect("year_typo", "time", year_typo),
        Defect("back_in_time", "time", back_in_time),
        Defect("tax_rate_mismatch", "consistency", tax_rate_mismatch),
        Defect("swapped_amounts", "consistency", swapped_amounts),
        Defect("reference_price_change", "consistency", reference_price_change),
        Defect("reference_rate_change", "consistency", reference_rate_change),
    )
}


def apply_defect(name: str, clean_dir: Path, out_dir: Path, *, seed: int = 0) -> str:
    """Write into ``out_dir`` the clean folder ``clean_dir`` with defect ``name``.

    Deterministic: the generator is seeded with the defect's name and ``seed``.
    Returns the defect's one-line account of what it changed.
    """
    tables = read_folder(clean_dir)
    what = DEFECTS[name].make(tables, random.Random(f"{name}:{seed}"))
    write_folder(tables, out_dir)
    return what


@dataclass(frozen=True)
class Simulation:
    """One jafgen run (:func:`dq.data.generate`), cached and shared by bases."""

    seed: int
    days: int

    @property
    def name(self) -> str:
        """The cache folder's name, e.g. ``seed42-240d``."""
        return f"seed{self.seed}-{self.days}d"

    @property
    def years(self) -> float:
        """What :func:`dq.data.generate` takes (it simulates ``round(365 * years)`` days)."""
        return self.days / 365


@dataclass(frozen=True)
class Base:
    """A published state: the snapshot of ``sim`` up to ``published`` run and published."""

    name: str
    sim: Simulation
    published: str  # the last day of yesterday's snapshot


@dataclass(frozen=True)
class Scenario:
    """Today's run on a base: the snapshot up to ``today``, with a defect or clean."""

    name: str
    base: Base
    today: str
    defect: str | None = None
    note: str = ""

    @property
    def new_days(self) -> list[str]:
        """The days today's clean snapshot adds to the published one."""
        start = dt.date.fromisoformat(self.base.published)
        end = dt.date.fromisoformat(self.today)
        return [
            (start + dt.timedelta(days=i)).isoformat() for i in range(1, (end - start).days + 1)
        ]

    @property
    def family(self) -> str:
        """The defect's family, or ``clean``."""
        return DEFECTS[self.defect].family if self.defect else "clean"


def _day(index: int) -> str:
    """The ISO day of simulation day ``index`` (day 0 is a Saturday, 2018-09-01)."""
    return (FIRST_DAY + dt.timedelta(days=index)).isoformat()


_A, _B, _C = Simulation(42, 240), Simulation(7, 110), Simulation(123, 140)


def _clean(name: str, sim: Simulation, new_day: int, note: str, new_days: int = 1) -> Scenario:
    base = Base(f"{name}-base", sim, _day(new_day - new_days))
    return Scenario(name, base, _day(new_day), note=note)


#: The defects' base: Brooklyn has traded for six weeks (category_collapse needs two stores).
DEFECT_BASE = Base("defects-base", _A, _day(234))

CLEAN: tuple[Scenario, ...] = (
    Scenario("clean_wednesday", DEFECT_BASE, _day(235), note="the defects' base, clean"),
    _clean("clean_saturday", _A, 84, "a Saturday, 85 days"),
    _clean("clean_sunday", _B, 99, "a Sunday, another seed, 100 days"),
    _clean("clean_monday", _C, 128, "a Monday after a weekend, another seed, 129 days"),
    _clean("clean_store_opening", _A, 192, "Brooklyn opens: a new store and its first orders"),
    _clean("clean_two_days", _B, 63, "two new days at once (Friday, Saturday)", new_days=2),
)

DEFECT_SCENARIOS: tuple[Scenario, ...] = tuple(
    Scenario(
        name,
        DEFECT_BASE,
        (dt.date.fromisoformat(DEFECT_BASE.published) + dt.timedelta(days=d.new_days)).isoformat(),
        defect=name,
        note=d.doc,
    )
    for name, d in DEFECTS.items()
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in CLEAN + DEFECT_SCENARIOS}


def build_today(scenario: Scenario, sim_dir: Path, out_dir: Path, work_dir: Path) -> str:
    """Write today's raw folder of ``scenario`` into ``out_dir`` (from the cached
    simulation ``sim_dir``; ``work_dir`` holds the clean snapshot of a defect).
    Returns what was changed ("" for a clean scenario)."""
    if not scenario.defect:
        snapshot(sim_dir, out_dir, scenario.today)
        return ""
    clean = Path(work_dir) / f"{scenario.name}-clean"
    snapshot(sim_dir, clean, scenario.today)
    what = apply_defect(scenario.defect, clean, out_dir)
    shutil.rmtree(clean)
    return what
