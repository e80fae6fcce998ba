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

Issue 13 adds the streamed reader (dq.seed_stream): the "stream" copies run
the same scenarios with ``DQ_STREAM_SEEDS=1`` (dq.dbt_hooks installed, as in
the pipeline's dbt process) and must give the same databases as stock agate
plus stock dbt-sqlite; "stream_stock" streams into dbt-sqlite's own loader,
which iterates ``agate_table.rows``. The seeds declared all text (the
``*_text`` and odd-header ones) are streamed; the others fall back to agate.
The tests at the end check the reader itself against agate, file by file,
without dbt.

dbt runs in the test process (``dbtRunner``), one invocation after another.
"""

from __future__ import annotations

import contextlib
import csv
import io
import random
import shutil
import sqlite3
import tracemalloc
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import pytest

from dq import dbt_hooks, seed_stream

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


@contextlib.contextmanager
def _routes():
    """Which seeds the streamed reader took (its table) and which it left to agate
    (None), by file name, for one dbt invocation."""
    seen: dict[str, object] = {}
    original = seed_stream.open_table

    def spy(path, *args, **kwargs):
        table = original(path, *args, **kwargs)
        seen[Path(path).name] = table
        return table

    with mock.patch.object(seed_stream, "open_table", spy):
        yield seen


@dataclass
class DbtOutcome:
    returncode: int
    output: str  # every node's message and dbt's exception, if any
    #: file name -> StreamedTable, or None where the reader left the file to agate
    routes: dict = field(default_factory=dict)


INFERRED_COLUMNS = ["int_col", "float_col", "bool_col", "date_col", "datetime_col"]
INFERRED_COLUMNS += ["iso_col", "text_col", "big_col", "whole_float"]


def _text(*columns: str) -> str:
    return "{" + ", ".join(f"{c}: text" for c in columns) + "}"


SEEDS_YML = f"""\
version: 2
seeds:
  - name: odd_text
    config:
      column_types: {{id: text, name: text, note: text, amount: text}}
  - name: mixed
    config:
      quote_columns: true
      column_types: {{code: text}}
  - name: inferred_text
    config:
      column_types: {_text(*INFERRED_COLUMNS)}
  - name: wide_text
    config:
      column_types: {_text(*(f"c{j:02d}" for j in range(60)))}
  - name: long_text
    config:
      column_types: {_text("id", "label")}
  - name: plain_text
    config:
      column_types: {_text("id", "name", "note")}
  - name: semicolon_text
    config:
      delimiter: ";"
      column_types: {_text("a", "b", "c")}
  - name: odd_header
    config:
      column_types: {_text("x", "x_2", "c", "y")}
  - name: header_only
    config:
      column_types: {_text("x", "y")}
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

# No quote anywhere (the reader's line route): null spellings with unicode spaces,
# a blank line (agate: a row of nulls), a short row (padded with nulls), tabs,
# unicode, no line break at the end.
PLAIN_TEXT = (
    "id,name,note\n"
    "1, null ,NULL\n"
    "2,\u00a0nUlL\u3000,Null\t\n"
    "\n"
    "3\n"
    "4,,\n"
    "5,tab\there,ünïcödé 🎉\n"
    "6,nullx,'null'\n"
    "7,x,y"
)

# BOM, CRLF, a seed-level delimiter, quoted delimiters and line breaks (csv route).
SEMICOLON_TEXT = '\ufeffa;b;c\r\n1;"x;y";"two\r\nlines"\r\n2;null;\r\n;" ";\r\n'

# A repeated and a blank header name: agate names them x_2 and c (with warnings).
ODD_HEADER = "x,x,,y\n1,2,3,4\n5,,null,\n"

HEADER_ONLY = "x,y\n"


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


def _long_csv(rows: int = 17000, seed: int = 4) -> str:
    """Enough rows for two statements at the default limit (16383 rows of 2 columns)."""
    rng = random.Random(seed)
    lines = ["id,label"]
    lines += [f"{i},{rng.choice(['x', 'y', '', 'z z'])}{i % 97}" for i in range(rows)]
    return "\n".join(lines) + "\n"


LONG_TEXT_CHANGED = _long_csv(9000, seed=5)

SEEDS = {
    "odd_text.csv": ODD_TEXT,
    "inferred.csv": INFERRED,
    "mixed.csv": MIXED,
    "empty.csv": EMPTY,
    "wide.csv": _wide_csv(),
    "long.csv": _long_csv(),
    # The same content declared all text, and the reader's odd cases.
    "inferred_text.csv": INFERRED,
    "wide_text.csv": _wide_csv(),
    "long_text.csv": _long_csv(),
    "plain_text.csv": PLAIN_TEXT,
    "semicolon_text.csv": SEMICOLON_TEXT,
    "odd_header.csv": ODD_HEADER,
    "header_only.csv": HEADER_ONLY,
}
#: Seeds whose every column is declared text: the streamed reader takes them.
STREAMED = {name for name in SEEDS if name.endswith("_text.csv")} | {
    "odd_header.csv",
    "header_only.csv",
}


def _write_seeds(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # newline="": the CRLFs above are data, not something to translate.
    for name, text in files.items():
        with open(folder / name, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)


class Workspace:
    """One copy of the project with its own seeds folder and build folder."""

    def __init__(self, base: Path, *, stock: bool, stream: bool = False) -> None:
        self.base = base
        self.stream = stream
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

        # As dq.dbt.invoke: the hooks installed; streamed only in the "stream" copies.
        dbt_hooks.install()
        env = {
            "DQ_BUILD_DB": str(self.db),
            "DQ_BUILD_DIR": str(self.build),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            dbt_hooks.STREAM_ENV: "1" if self.stream else "0",
        }
        with environment(env), _variable_limit(variable_limit), _routes() as routes:
            result = dbtRunner().invoke(
                [*args, "--project-dir", str(self.project), "--profiles-dir", str(ROOT)]
            )
        messages = [str(n.message or "") for n in getattr(result.result, "results", None) or []]
        if result.exception is not None:
            messages.append(str(result.exception))
        return DbtOutcome(0 if result.success else 1, "\n".join(messages), dict(routes))


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
    stream = Workspace(base / "stream", stock=False, stream=True)
    limited = Workspace(base / "fast_999", stock=False)
    limited_stock = Workspace(base / "stock_999", stock=True)
    limited_stream = Workspace(base / "stream_999", stock=False, stream=True)
    stream_stock = Workspace(base / "stream_stock", stock=True, stream=True)
    out: dict = {
        "fast": fast,
        "stock": stock,
        "stream": stream,
        "fast_999": limited,
        "stream_999": limited_stream,
    }

    # 1. Full load. --show: dbt prints a sample of each seed's table after the run
    # (agate's order_by and print_table), which a streamed table must also answer.
    out["seed"] = _both(lambda w: _ok(w.dbt("seed")), fast, stock)
    out["stream_seed"] = _ok(stream.dbt("seed", "--show"))
    out["full"] = _both(lambda w: snapshot(w.db), fast, stock)
    out["stream_full"] = snapshot(stream.db)
    out["stream_stock_seed"] = _ok(stream_stock.dbt("seed"))
    out["stream_stock_full"] = snapshot(stream_stock.db)

    # 2. Three CSVs change, two are selected: no full refresh (truncate + insert).
    def select_changed(w: Workspace):
        _write_seeds(
            w.seeds,
            {
                "inferred.csv": INFERRED_CHANGED,
                "odd_text.csv": ODD_TEXT + "9,added,row,1\r\n",
                "long_text.csv": LONG_TEXT_CHANGED,
            },
        )
        _ok(w.dbt("seed", "--select", "inferred", "long_text"))
        return snapshot(w.db)

    out["select"] = _both(select_changed, fast, stock)
    out["stream_select"] = select_changed(stream)

    # 3. The same selection with --full-refresh: the table is rebuilt, types re-inferred.
    def refresh(w: Workspace):
        _ok(w.dbt("seed", "--select", "inferred", "--full-refresh"))
        return snapshot(w.db)

    out["refresh"] = _both(refresh, fast, stock)
    out["stream_refresh"] = refresh(stream)

    # 4. Bound-variable limit 999 in the dbt process.
    out["limited"] = _both(lambda w: w.dbt("seed", variable_limit=999), limited, limited_stock)
    out["limited_db"] = snapshot(limited.db)
    out["stream_limited"] = _ok(limited_stream.dbt("seed", variable_limit=999))
    out["stream_limited_db"] = snapshot(limited_stream.db)
    return out


def test_project_uses_the_fast_loader(runs: dict) -> None:
    """dbt dispatches to the project's macro by default (its probe query is in the log)."""
    fast_log = (runs["fast"].project / "logs" / "dbt.log").read_text()
    stock_log = (runs["stock"].project / "logs" / "dbt.log").read_text()
    assert "seed_loader: variable limit" in fast_log
    assert "seed_loader: variable limit" not in stock_log


def test_full_load_identical_to_stock(runs: dict) -> None:
    fast, stock = runs["full"]
    assert set(fast) == {Path(name).stem for name in SEEDS}
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
    assert len(fast["long_text"]["rows"]) == 9000
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


# -- the streamed reader (issue 13) ----------------------------------------------------


def test_streamed_reader_takes_the_all_text_seeds(runs: dict) -> None:
    """In the stream copies the all-text seeds are streamed and every other seed is left
    to agate; the agate copies never ask the reader (DQ_STREAM_SEEDS=0)."""
    routes = runs["stream_seed"].routes
    assert set(routes) == set(SEEDS)
    for name in SEEDS:
        streamed = isinstance(routes[name], seed_stream.StreamedTable)
        assert streamed == (name in STREAMED), name
    assert runs["stream_stock_seed"].routes.keys() == routes.keys()
    assert runs["seed"][0].routes == {} and runs["seed"][1].routes == {}


def test_streamed_load_identical_to_stock(runs: dict) -> None:
    """Streamed into the project's loader or dbt-sqlite's own one: the same tables as
    stock agate and stock dbt-sqlite, in every scenario."""
    stock = runs["full"][1]
    assert runs["stream_full"] == stock
    assert runs["stream_stock_full"] == stock
    assert runs["stream_select"] == runs["select"][1]
    assert runs["stream_refresh"] == runs["refresh"][1]
    assert runs["stream_limited_db"] == stock


def test_streamed_load_covers_the_oddities(runs: dict) -> None:
    """Guard the reader's fixtures: nulls, padding, blank lines, odd headers occur."""
    full = runs["stream_full"]
    assert [r[:3] for r in full["plain_text"]["rows"]] == [
        ("1", None, None),
        ("2", None, None),
        (None, None, None),  # the blank line
        ("3", None, None),  # the short row
        ("4", None, None),
        ("5", "tab\there", "ünïcödé 🎉"),
        ("6", "nullx", "'null'"),
        ("7", "x", "y"),
    ]
    assert [r[:3] for r in full["semicolon_text"]["rows"]] == [
        ("1", "x;y", "two\nlines"),
        ("2", None, None),
        (None, None, None),
    ]
    assert [c[1] for c in full["odd_header"]["columns"]] == ["x", "x_2", "c", "y"]
    assert full["header_only"]["rows"] == [] and len(full["long_text"]["rows"]) == 17000
    assert all(r[9:] == ("text",) * 9 for r in full["inferred_text"]["rows"][:2])
    assert "Random sample of table" in (runs["stream"].project / "logs" / "dbt.log").read_text()


def test_streamed_tables_hold_one_batch(runs: dict) -> None:
    """The loader asks for batches of the live limit, and the table never held more
    rows than that at once (17000 rows in batches of 16383, or of 499 at 999 variables);
    dbt-sqlite's own loader iterates rows, read ROW_BATCH at a time."""
    limit = sqlite3.connect(":memory:").getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    full = runs["stream_seed"].routes["long_text.csv"]
    assert full.largest_batch == min(limit, 32766) // 2 < 17000
    assert runs["stream_limited"].routes["long_text.csv"].largest_batch == 999 // 2
    assert _rows_in_first_statement(runs["stream_999"], "long_text") == 999 // 2
    rows = runs["stream_stock_seed"].routes["long_text.csv"]
    assert rows.largest_batch == seed_stream.ROW_BATCH


def _agate_outcome(path: Path, columns, delimiter: str):
    """dbt's own from_csv: (names, type classes and null values, rows) or the exception."""
    from dbt_common.clients import agate_helper

    reader = getattr(agate_helper.from_csv, "__wrapped__", agate_helper.from_csv)
    try:
        table = reader(str(path), text_columns=columns, delimiter=delimiter)
    except BaseException as exc:  # noqa: BLE001 - StopIteration for an empty file
        return f"{type(exc).__name__}: {exc}"
    types = [(type(t), tuple(t.null_values)) for t in table.column_types]
    return table.column_names, types, [tuple(r.values()) for r in table.rows]


def _streamed_outcome(table: seed_stream.StreamedTable, batch_size: int):
    types = [(type(t), tuple(t.null_values)) for t in table.column_types]
    rows = [tuple(r.values()) for r in table.rows]
    width = len(table.column_names)
    flat = [v for batch in table.flat_batches(batch_size) for v in batch]
    assert flat == [v for row in rows for v in row]
    assert len(table.rows) == len(rows) == len(table)
    assert [tuple(r) for r in table.matrix()] == rows and len(table.matrix()) == len(rows)
    assert all(len(b) % width == 0 for b in table.flat_batches(batch_size))
    return table.column_names, types, rows


# name: (file text, column_types or None for every header name, delimiter, streamed)
READER_CASES = {
    "odd_text": (ODD_TEXT, None, ",", True),
    "plain_text": (PLAIN_TEXT, None, ",", True),
    "semicolon": (SEMICOLON_TEXT, None, ";", True),
    "tab": ("a\tb\n1\t\n\t null\n", None, "\t", True),
    "wide": (_wide_csv(), None, ",", True),
    "long": (_long_csv(3000), None, ",", True),
    "blank_lines_one_column": ("a\n\n\nx\n\n", None, ",", True),
    "blank_lines_two_columns": ('a,b\n\n"q",\n\n', None, ",", True),
    "bare_cr": ("a,b\r1,2\r3,null\r", None, ",", True),
    "no_final_newline": ("a,b\n1,2", None, ",", True),
    "header_only": ("a,b\n", None, ",", True),
    "header_only_no_newline": ("a,b", None, ",", True),
    "quoted_header": ('"a,1",b\n1,2\n', None, ",", True),
    "quoted_line_break": ('a,b\n"x\ny",1\n"q",2\n', None, ",", True),
    "nul_byte": ("a,b\n1\x00,2\n", None, ",", True),
    "odd_header": (ODD_HEADER, {"x": "text", "x_2": "text", "c": "text", "y": "text"}, ",", True),
    "extra_forced_name": ("a,b\n1,2\n", {"a": "text", "b": "text", "zz": "text"}, ",", True),
    # Left to agate: it rejects them, or infers a type.
    "ragged": ("a,b\n1,2\n1,2,3\n", None, ",", False),
    "ragged_quoted": ('a,b\n"1",2,3\n', None, ",", False),
    "empty_file": ("", {}, ",", False),
    "bom_only": ("\ufeff", {}, ",", False),
    "blank_first_line": ("\n1,2\n", {"a": "text", "b": "text"}, ",", False),
    "inferred": (INFERRED, {}, ",", False),
    "partly_text": (MIXED, {"code": "text"}, ",", False),
    "odd_header_unforced": (ODD_HEADER, None, ",", False),
    "field_too_large": ('a,b\n"' + "x" * 200_000 + '",1\n', None, ",", False),
    "field_too_large_unquoted": ("a,b\n" + "x" * 200_000 + ",1\n", None, ",", False),
    "field_at_the_limit": ("a,b\n" + "x" * 131_072 + ",1\n", None, ",", True),
    "bad_utf8": (None, {"a": "text"}, ",", False),
}


@pytest.mark.parametrize("case", sorted(READER_CASES))
def test_reader_matches_agate(case: str, tmp_path: Path) -> None:
    """File by file: the streamed table has agate's names, types and values, with
    batch sizes that split rows every way; a file it leaves alone reaches agate, which
    reads or rejects it as without the hook."""
    from dbt_common.clients import agate_helper

    text, columns, delimiter, streamed = READER_CASES[case]
    path = tmp_path / f"{case}.csv"
    if text is None:
        path.write_bytes(b"a\n\xff\xfe\n")
    else:
        path.write_text(text, encoding="utf-8", newline="")
    if columns is None:
        with open(path, encoding="utf-8-sig") as fh:
            columns = {name: "text" for name in next(csv.reader(fh, delimiter=delimiter))}
    expected = _agate_outcome(path, columns, delimiter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = seed_stream.open_table(str(path), columns, delimiter, reader=agate_helper.from_csv)
    assert (table is not None) == streamed, expected
    if table is not None:
        for batch_size in (1, 2, 3, 1000):
            assert _streamed_outcome(table, batch_size) == expected
        assert table.original_abspath == str(path.resolve())


def test_header_warnings_as_agate(tmp_path: Path) -> None:
    """agate warns of a repeated or blank header name; so does the streamed reader."""
    from dbt_common.clients import agate_helper

    path = tmp_path / "odd_header.csv"
    path.write_text(ODD_HEADER)
    columns = {"x": "text", "x_2": "text", "c": "text", "y": "text"}
    with warnings.catch_warnings(record=True) as agate_warnings:
        warnings.simplefilter("always")
        agate_helper.from_csv(str(path), text_columns=columns)
    with warnings.catch_warnings(record=True) as streamed_warnings:
        warnings.simplefilter("always")
        seed_stream.open_table(str(path), columns, ",", reader=agate_helper.from_csv)

    def seen(caught):
        return sorted((w.category.__name__, str(w.message)) for w in caught)

    assert seen(streamed_warnings) == seen(agate_warnings) and len(agate_warnings) == 2


NULLISH = [
    "", " ", "\t", "\n", "null", "NULL", "Null", "nUlL", " null ", "\u00a0null\u3000",
    "\u2028null\u2029", "\x1cnull\x1f", "\x85null", "null\u200b", "nul", "nulll", "null.",
    "none", "None", "NA", "n/a", ".", "0", "false", "İ", "ǅ", "ß", "ﬃ", "ΣΑΣ", "'null'",
    '"null"', "x", "ünïcödé", "🎉", "\x00", "null\x00",
]  # fmt: skip


def test_text_cast_matches_agate() -> None:
    """The reader's inline cast is agate's Text.cast (dbt's null values), value by
    value, on null spellings, unicode spaces and case oddities."""
    from dbt_common.clients import agate_helper

    tester = agate_helper.build_type_tester(text_columns=["c"])
    text = tester._force["c"]  # pylint: disable=protected-access
    nulls = seed_stream._text_fast((text,))  # pylint: disable=protected-access
    assert nulls == frozenset({"null", ""})
    cells = [*NULLISH, None]
    assert seed_stream._cast_text(cells, nulls) == [text.cast(c) for c in cells]  # pylint: disable=protected-access


def test_text_values_need_no_sqlite_transform() -> None:
    """A streamed all-text table skips the adapter's transform (dbt-sqlite's converts
    Decimals): on str and None it changes nothing."""
    from dbt.adapters.sqlite.impl import SQLiteAdapter

    adapter = object.__new__(SQLiteAdapter)
    values = [*NULLISH, None]
    assert adapter.transform_seed_row(values) == values


def _bulk_csv(path: Path, rows: int) -> int:
    rng = random.Random(rows)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("id,order_id,sku,note\n")
        for i in range(rows):
            fh.write(f"{i:08d}-{rng.getrandbits(64):016x},{rng.getrandbits(96):024x},")
            fh.write(f"SKU-{i % 97:03d},{'null' if i % 13 == 0 else 'n' * (i % 40)}\n")
    return path.stat().st_size


def _peak_while_reading(path: Path, batch_size: int) -> tuple[int, int, int]:
    """(Python's peak allocated bytes, rows seen, largest batch held) while a table of
    ``path`` is opened, counted and read to the end in batches."""
    from dbt_common.clients import agate_helper

    columns = {"id": "text", "order_id": "text", "sku": "text", "note": "text"}
    tracemalloc.start()
    try:
        table = seed_stream.open_table(str(path), columns, ",", reader=agate_helper.from_csv)
        seen = sum(len(values) // 4 for values in table.flat_batches(batch_size))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == len(table)
    return peak, seen, table.largest_batch


def test_reading_memory_does_not_grow_with_the_file(tmp_path: Path, monkeypatch) -> None:
    """Reading 4x the rows takes no more memory, far less than the file, and the table
    never holds more than the batch it was asked for (agate holds every row). Text is
    read 64k characters at a time here (1M in use), so the files are many reads long."""
    monkeypatch.setattr(seed_stream, "CHUNK", 1 << 16)
    small = _bulk_csv(tmp_path / "small.csv", 20_000)
    large = _bulk_csv(tmp_path / "large.csv", 80_000)
    peak_small, rows_small, batch_small = _peak_while_reading(tmp_path / "small.csv", 500)
    peak_large, rows_large, batch_large = _peak_while_reading(tmp_path / "large.csv", 500)
    assert (rows_small, rows_large) == (20_000, 80_000)
    assert batch_small == batch_large == 500
    assert peak_large < 1.25 * peak_small + (256 << 10), (peak_small, peak_large)
    assert peak_large < large / 8, (peak_large, large, small)


def test_stock_agate_without_the_switch(tmp_path: Path) -> None:
    """Installed but switched off (DQ_STREAM_SEEDS=0, a plain dbt process): agate reads."""
    import agate
    from dbt_common.clients import agate_helper

    from dq.dbt import environment

    dbt_hooks.install()
    path = tmp_path / "t.csv"
    path.write_text(HEADER_ONLY + "1,2\n")
    columns = {"x": "text", "y": "text"}
    with environment({dbt_hooks.STREAM_ENV: "0"}):
        plain = agate_helper.from_csv(str(path), text_columns=columns)
    with environment({dbt_hooks.STREAM_ENV: "1"}):
        streamed = agate_helper.from_csv(str(path), text_columns=columns)
        typed = agate_helper.from_csv(str(path), text_columns={})
    assert isinstance(plain, agate.Table) and isinstance(typed, agate.Table)
    assert isinstance(streamed, seed_stream.StreamedTable)
    assert agate_helper.as_matrix(plain) == [("1", "2")]
    assert list(agate_helper.as_matrix(streamed)) == [("1", "2")]
