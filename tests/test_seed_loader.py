"""The project's seed loader (dbt_project/macros/seed_loader.sql) against stock dbt-sqlite.

Every scenario runs twice, in two copies of the project that differ only in
that the "stock" copy lacks ``macros/seed_loader.sql`` (so dbt dispatches to
dbt-sqlite's own ``sqlite__load_csv_rows``). The copies hold the project's
``dbt_project.yml`` and macros but no models: seeds depend on nothing else,
and the models would ``ref`` the production seeds this test does not load.

The resulting SQLite files are compared table by table: the CREATE statement
(declared types, column names and quoting), ``pragma table_info``, and every
row in insertion order with each value and its ``typeof()``.

Scenarios: a full ``dbt seed``; ``--select`` of one seed after its CSV (and
another one's) changed; the same with ``--full-refresh`` after a type change;
and a full load with SQLite's bound-variable limit lowered to 999 in the dbt
process, where stock dbt-sqlite (10000 rows per statement) must fail on the
wide seed while the project's loader, which sizes batches from the live limit,
must load everything exactly like stock does without the limit.

dbt runs in the test process (``dbtRunner``), one invocation after another.
"""

from __future__ import annotations

import contextlib
import csv
import io
import random
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT = ROOT / "dbt_project"
LOADER = DBT_PROJECT / "macros" / "seed_loader.sql"


@contextlib.contextmanager
def _variable_limit(limit: int | None):
    """Lower SQLITE_LIMIT_VARIABLE_NUMBER on every connection dbt-sqlite opens, for
    the duration of one dbt invocation: the limit is per connection and the Python
    build here allows 250000, so patching the connection manager is the one place
    to lower it for dbt without rebuilding SQLite."""
    from dbt.adapters.sqlite.connections import SQLiteConnectionManager

    if limit is None:
        yield
        return
    original = SQLiteConnectionManager.__dict__["open"]

    def open_limited(cls, connection):
        connection = original.__func__(cls, connection)
        if connection.handle is not None:
            connection.handle.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
        return connection

    SQLiteConnectionManager.open = classmethod(open_limited)
    try:
        yield
    finally:
        SQLiteConnectionManager.open = original


@dataclass
class DbtOutcome:
    returncode: int
    output: str  # every node's message and dbt's exception, if any


SEEDS_YML = """\
version: 2
seeds:
  - name: odd_text
    config:
      column_types: {id: text, name: text, note: text, amount: text}
  - name: mixed
    config:
      quote_columns: true
      column_types: {code: text}
"""

# CRLF line ends, a BOM, quoted commas, doubled quotes, embedded LF and CRLF,
# unicode, empty and whitespace-only fields, null spellings, a tab.
ODD_TEXT = (
    "\ufeffid,name,note,amount\r\n"
    '1,"Smith, John","He said ""hi""",007\r\n'
    '2,Zoë Ångström,"line one\nline two",-0.50\r\n'
    '3,東京,"crlf\r\ninside",1e3\r\n'
    '4,,"",\r\n'
    "5,null,NULL, null \r\n"
    "6,   ,emoji 🎉 and rtl שלום,  42  \r\n"
    '7,"trailing space ",\'single quotes\',"1,234.5"\r\n'
    "8,tab\there,back\\slash,true\r\n"
)

# No column_types: agate infers int, float, bool, date, datetime, ISO datetime, text.
INFERRED = (
    "int_col,float_col,bool_col,date_col,datetime_col,iso_col,text_col,big_col,whole_float\n"
    "1,1.5,true,2024-01-31,2024-01-31 12:34:56,2024-01-31T12:34:56,a,12345678901234567890,1\n"
    '-2,-0.25,false,1999-12-31,1999-12-31 23:59:59,1999-12-31T23:59:59Z,"b, c",'
    "9223372036854775807,2.0\n"
    ",,,,,,,,\n"
    "3,0.1,,2000-02-29,2000-02-29 00:00:00,2000-02-29T00:00:00.123456,null,"
    "-9223372036854775808,3\n"
)

# Changed for the --select / --full-refresh runs: int_col now holds a float.
INFERRED_CHANGED = (
    "int_col,float_col,bool_col,date_col,datetime_col,iso_col,text_col,big_col,whole_float\n"
    "4.5,2.5,false,2024-02-01,2024-02-01 00:00:01,2024-02-01T00:00:01,d,1,4\n"
    "5,3.5,true,2024-02-02,2024-02-02 00:00:02,2024-02-02T00:00:02,e,2,5\n"
)

# Declared and inferred columns side by side; quoted identifiers.
MIXED = "code,select,order id,price\n007,x,1,9.99\n010,y,2,\n"

EMPTY = "a,b\n"


def _wide_csv(columns: int = 60, rows: int = 100) -> str:
    """A seed far wider than 999 / rows-per-statement allows, with every inferred type."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f"c{j:02d}" for j in range(columns)])
    for i in range(rows):
        row = []
        for j in range(columns):
            kind = j % 4
            if kind == 0:
                row.append(str(i * j - 500))
            elif kind == 1:
                row.append(f"{(i - j) / 7:.4f}")
            elif kind == 2:
                row.append(f"r{i}c{j}")
            else:
                row.append("" if i % 5 == 0 else ("true" if (i + j) % 2 else "false"))
        writer.writerow(row)
    return out.getvalue()


def _long_csv(rows: int = 17000) -> str:
    """Enough rows for two statements at the default limit (16383 rows of 2 columns)."""
    rng = random.Random(4)
    lines = ["id,label"]
    lines += [f"{i},{rng.choice(['x', 'y', '', 'z z'])}{i % 97}" for i in range(rows)]
    return "\n".join(lines) + "\n"


SEEDS = {
    "odd_text.csv": ODD_TEXT,
    "inferred.csv": INFERRED,
    "mixed.csv": MIXED,
    "empty.csv": EMPTY,
    "wide.csv": _wide_csv(),
    "long.csv": _long_csv(),
}


def _write_seeds(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # newline="": the CRLFs above are data, not something to translate.
    for name, text in files.items():
        with open(folder / name, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)


class Workspace:
    """One copy of the project with its own seeds folder and build folder."""

    def __init__(self, base: Path, *, stock: bool) -> None:
        self.base = base
        self.project = base / "dbt_project"
        self.seeds = base / "seeds"
        self.build = base / "build"
        self.project.mkdir(parents=True)
        shutil.copy2(DBT_PROJECT / "dbt_project.yml", self.project)
        shutil.copytree(DBT_PROJECT / "macros", self.project / "macros")
        if stock:
            (self.project / "macros" / LOADER.name).unlink()
        _write_seeds(self.seeds, {**SEEDS, "_seeds.yml": SEEDS_YML})
        self.build.mkdir()

    @property
    def db(self) -> Path:
        return self.build / "test.db"

    def dbt(self, *args: str, variable_limit: int | None = None) -> DbtOutcome:
        """Run dbt in this process (``dbtRunner``) against this workspace; never raises
        on failure. In-process saves dbt's import time on every call."""
        from dbt.cli.main import dbtRunner

        from dq.dbt import environment

        env = {
            "DQ_BUILD_DB": str(self.db),
            "DQ_BUILD_DIR": str(self.build),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        with environment(env), _variable_limit(variable_limit):
            result = dbtRunner().invoke(
                [*args, "--project-dir", str(self.project), "--profiles-dir", str(ROOT)]
            )
        messages = [str(n.message or "") for n in getattr(result.result, "results", None) or []]
        if result.exception is not None:
            messages.append(str(result.exception))
        return DbtOutcome(0 if result.success else 1, "\n".join(messages))


def snapshot(db: Path) -> dict[str, dict]:
    """Everything a load decides: DDL, declared columns, rows in order, storage classes."""
    con = sqlite3.connect(db)
    try:
        tables = {}
        for name, ddl in con.execute(
            "select name, sql from sqlite_master where type = 'table' order by name"
        ):
            info = con.execute(f'pragma table_info("{name}")').fetchall()
            cols = [f'"{c[1]}"' for c in info]
            select = ", ".join(cols + [f"typeof({c})" for c in cols])
            rows = con.execute(f'select {select} from "{name}" order by rowid').fetchall()
            tables[name] = {"ddl": ddl, "columns": info, "rows": rows}
        return tables
    finally:
        con.close()


def _ok(outcome: DbtOutcome) -> DbtOutcome:
    assert outcome.returncode == 0, outcome.output[-4000:]
    return outcome


def _both(fn, fast, stock):
    """fn(fast) and fn(stock), one after the other (dbt in-process is not thread-safe)."""
    return fn(fast), fn(stock)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run every scenario once for both loaders; tests below only inspect the results."""
    base = tmp_path_factory.mktemp("seed_loader")
    fast = Workspace(base / "fast", stock=False)
    stock = Workspace(base / "stock", stock=True)
    limited = Workspace(base / "fast_999", stock=False)
    limited_stock = Workspace(base / "stock_999", stock=True)
    out: dict = {"fast": fast, "stock": stock, "fast_999": limited}

    # 1. Full load.
    out["seed"] = _both(lambda w: _ok(w.dbt("seed")), fast, stock)
    out["full"] = _both(lambda w: snapshot(w.db), fast, stock)

    # 2. Two CSVs change, only one is selected: no full refresh (truncate + insert).
    def select_changed(w: Workspace):
        _write_seeds(
            w.seeds,
            {"inferred.csv": INFERRED_CHANGED, "odd_text.csv": ODD_TEXT + "9,added,row,1\r\n"},
        )
        _ok(w.dbt("seed", "--select", "inferred"))
        return snapshot(w.db)

    out["select"] = _both(select_changed, fast, stock)

    # 3. The same selection with --full-refresh: the table is rebuilt, types re-inferred.
    out["refresh"] = _both(
        lambda w: (_ok(w.dbt("seed", "--select", "inferred", "--full-refresh")), snapshot(w.db))[1],
        fast,
        stock,
    )

    # 4. Bound-variable limit 999 in the dbt process.
    out["limited"] = _both(lambda w: w.dbt("seed", variable_limit=999), limited, limited_stock)
    out["limited_db"] = snapshot(limited.db)
    return out


def test_project_uses_the_fast_loader(runs: dict) -> None:
    """dbt dispatches to the project's macro by default (its probe query is in the log)."""
    fast_log = (runs["fast"].project / "logs" / "dbt.log").read_text()
    stock_log = (runs["stock"].project / "logs" / "dbt.log").read_text()
    assert "seed_loader: variable limit" in fast_log
    assert "seed_loader: variable limit" not in stock_log


def test_full_load_identical_to_stock(runs: dict) -> None:
    fast, stock = runs["full"]
    assert set(fast) == {"odd_text", "inferred", "mixed", "empty", "wide", "long"}
    for table in stock:
        assert fast[table]["ddl"] == stock[table]["ddl"], table
        assert fast[table]["columns"] == stock[table]["columns"], table
        assert fast[table]["rows"] == stock[table]["rows"], table
    assert fast == stock


def test_load_covers_the_oddities(runs: dict) -> None:
    """Guard the fixtures themselves: the odd values and inferred types really occur."""
    fast, _ = runs["full"]
    notes = [r[2] for r in fast["odd_text"]["rows"]]
    assert 'He said "hi"' in notes and "line one\nline two" in notes
    # dbt opens seeds in text mode, so a quoted CRLF arrives as LF: in both loaders.
    assert "crlf\ninside" in notes and None in notes
    assert fast["odd_text"]["rows"][0][:4] == ("1", "Smith, John", 'He said "hi"', "007")
    declared = {c[1]: c[2] for c in fast["inferred"]["columns"]}
    assert declared["int_col"] == "INT" and declared["float_col"] == "REAL"
    assert declared["bool_col"] == "INT" and declared["date_col"] == "TEXT"
    storage = set(fast["inferred"]["rows"][0][9:])
    assert {"integer", "real", "text"} <= storage
    assert '"order id"' in fast["mixed"]["ddl"] and fast["mixed"]["rows"][0][0] == "007"
    assert fast["empty"]["rows"] == [] and len(fast["long"]["rows"]) == 17000


def test_select_without_full_refresh_identical_to_stock(runs: dict) -> None:
    fast, stock = runs["select"]
    assert fast == stock
    # Truncated and reloaded with the new rows, the declared types kept.
    assert len(fast["inferred"]["rows"]) == 2
    assert fast["inferred"]["columns"] == runs["full"][0]["inferred"]["columns"]
    # Not selected, so not reloaded although its CSV gained a row.
    assert fast["odd_text"] == runs["full"][0]["odd_text"]


def test_full_refresh_identical_to_stock(runs: dict) -> None:
    fast, stock = runs["refresh"]
    assert fast == stock
    declared = {c[1]: c[2] for c in fast["inferred"]["columns"]}
    assert declared["int_col"] == "REAL"  # rebuilt: 4.5 re-inferred the column
    assert fast["odd_text"] == runs["full"][0]["odd_text"]


def test_variable_limit_999(runs: dict) -> None:
    """With at most 999 variables per statement the fast loader still loads everything
    exactly like stock does without the limit, while stock itself fails."""
    fast_proc, stock_proc = runs["limited"]
    _ok(fast_proc)
    assert runs["limited_db"] == runs["full"][1]
    assert stock_proc.returncode != 0
    assert "too many SQL variables" in stock_proc.output


def _rows_in_first_statement(workspace: Workspace, seed: str) -> int:
    """Rows of the first insert, from the run SQL dbt writes for the seed."""
    [path] = (workspace.project / "target" / "run").rglob(f"{seed}.csv")
    return path.read_text().count("(?, ?)")  # the project's loader writes "(?, ?)"


def test_batches_follow_the_live_limit(runs: dict) -> None:
    """Statements are sized from the connection's limit (capped at 32766), not a guess:
    this also shows that the limit is read from the connection and not the 999 fallback."""
    con = sqlite3.connect(":memory:")  # same library as dbt's: same build limit
    build_limit = con.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    con.close()
    assert _rows_in_first_statement(runs["fast"], "long") == min(build_limit, 32766) // 2
    assert _rows_in_first_statement(runs["fast_999"], "long") == 999 // 2
