"""The generated check / clean / quarantine models on declarations that use
every feature of docs/sources.md, built by dbt (in this process) on SQLite.

Each faulty row carries one fault and must be rejected with exactly the reason
docs/sources.md promises; the clean rows must come out renamed, typed and in
clean units. Headers and values hold quotes, parentheses and SQL, which must
neither break nor inject into the generated SQL.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from dq import generate
from dq.sources import load_sources
from tests.conftest import REPO

KINDS_YML = """\
description: Kinds of things.
key: code
columns:
  code: {pattern: '[A-Z]{3}-[0-9]{3}'}
  label: {required: true}
"""
KINDS_CSV = """\
code,label
ABC-001,first
ABC-002,second
abc-3,bad code
"""

THINGS_YML = """\
description: Things with one of every column type.
key: id
max_rejected_share: 1
file: {nulls: [NA, n/a]}
columns:
  id: {}
  "Weight (kg), net": {name: weight_kg, type: decimal, min: 0, max: 500}
  count: {type: integer, min: 1}
  price: {type: money, unit: cents, required: true, min: 0}
  fragile: {type: boolean, true_values: [yes, y], false_values: [no, n]}
  made_on: {type: date, format: '%d/%m/%Y', min: '2000-01-01'}
  seen_at: {type: timestamp, max: now}
  colour:
    lowercase: true
    values: {red: is_red, "it's blue": null}
  kind: {references: kinds}
rules:
  - name: heavy things must be fragile
    reject_if: weight_kg > 100 and fragile = 0
"""
HEADER = 'id,"Weight (kg), net",count,price,fragile,made_on,seen_at,colour,kind'
GOOD = "1,2.5,3,1999,yes,31/12/2019,2019-01-01T10:00:00,Red,ABC-001"
THINGS = {
    # id: (the row after the id, the reason; None when clean)
    "1": ("2.5,3,1999,yes,31/12/2019,2019-01-01T10:00:00,Red,ABC-001", None),
    "2": ("NA,,250,n/a,,,  IT'S BLUE ,", None),  # blanks and null tokens are null
    "3": ("x,3,1999,yes,31/12/2019,,red,", "Weight (kg), net is not a number"),
    "4": ("501,3,1999,yes,31/12/2019,,red,", "Weight (kg), net is above 500"),
    "5": ("1,0,1999,yes,31/12/2019,,red,", "count is below 1"),
    "6": ("1,2.0,1999,yes,31/12/2019,,red,", "count is not a whole number"),
    "7": ("1,2,NA,yes,31/12/2019,,red,", "price is missing"),
    "8": ("1,2,19.99,yes,31/12/2019,,red,", "price is not a whole number of cents"),
    "9": ("1,2,-1,yes,31/12/2019,,red,", "price is below 0"),
    "10": ("1,2,1,maybe,31/12/2019,,red,", "fragile is not one of yes, y, no, n"),
    "11": ("1,2,1,y,31/02/2019,,red,", "made_on is not a date (%d/%m/%Y)"),
    "12": ("1,2,1,y,2019-12-31,,red,", "made_on is not a date (%d/%m/%Y)"),
    "13": ("1,2,1,y,31/12/1999,,red,", "made_on is below 2000-01-01"),
    "14": ("1,2,1,y,,2999-01-01 00:00,red,", "seen_at is in the future"),
    "15": ("1,2,1,y,,yesterday,red,", "seen_at is not a timestamp"),
    "16": ("1,2,1,y,,,green,", "colour is not one of red, it's blue"),
    "17": ("1,2,1,y,,,red,ABC-003", "kind has no clean match in kinds"),
    "18": ("1,2,1,y,,,red,abc-3", "kind has no clean match in kinds"),  # a rejected kind
    "19": ("101,2,1,n,,,red,", "heavy things must be fragile"),
    "20": ("101,2,1,y,,,red,'); drop table raw_things; --", "kind has no clean match in kinds"),
    "": ("1,2,1,y,,,red,", "id is missing"),
}

EVENTS_YML = """\
description: Events without a key; every copy of a repeated row is rejected.
duplicates: reject_all
columns:
  what: {required: true}
"""
LOG_YML = """\
description: Log lines without a key, with R's unnamed row-name column; all kept.
duplicates: keep_all
columns:
  '': {name: row_name, type: integer}
  line: {}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("sources")
    project = base / "dbt_project"
    project.mkdir()
    shutil.copy2(REPO / "dbt_project" / "dbt_project.yml", project)
    shutil.copytree(REPO / "dbt_project" / "macros", project / "macros")
    seeds = base / "seeds"
    seeds.mkdir()
    files = {
        "kinds.yml": KINDS_YML,
        "raw_kinds.csv": KINDS_CSV,
        "things.yml": THINGS_YML,
        "raw_things.csv": HEADER
        + "\n"
        + "".join(f"{i},{row}\n" for i, (row, _) in THINGS.items())
        + GOOD
        + "\n",  # a copy of row 1 with the same values: a duplicate row
        "events.yml": EVENTS_YML,
        "raw_events.csv": "what\nopen\nclose\nclose\n",
        "log.yml": LOG_YML,
        "raw_log.csv": '"",line\n1,hello\n2,hello\n',
    }
    for name, text in files.items():
        (seeds / name).write_text(text, encoding="utf-8")
    generate.write(load_sources(seeds), project / generate.GENERATED)
    build = base / "build"
    build.mkdir()
    from dbt.cli.main import dbtRunner

    from dq.dbt import environment

    env = {"DQ_BUILD_DB": str(build / "t.db"), "DQ_BUILD_DIR": str(build)}
    with environment(env):
        result = dbtRunner().invoke(
            ["build", "--project-dir", str(project), "--profiles-dir", str(REPO)]
        )
    assert result.success, result.exception or [str(r.message) for r in result.result.results]
    return build / "t.db"


def _rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


def test_every_fault_is_rejected_with_its_declared_reason(built):
    got = dict(_rows(built, "select coalesce(id, ''), reject_reason from rejected_things"))
    expected = {i: reason for i, (_, reason) in THINGS.items() if reason}
    expected["1"] = "duplicate row"  # the second, identical copy of row 1
    assert got == expected


def test_clean_rows_are_renamed_typed_and_in_clean_units(built):
    rows = _rows(
        built,
        "select id, weight_kg, typeof(weight_kg), count, price, fragile, made_on, seen_at,"
        " colour, is_red, kind from stg_things order by id",
    )
    assert rows == [
        ("1", 2.5, "real", 3, 19.99, 1, "2019-12-31", "2019-01-01 10:00:00", "red", 1, "ABC-001"),
        ("2", None, "null", None, 2.5, None, None, None, "it's blue", 0, None),
    ]
    columns = [r[1] for r in _rows(built, "pragma table_info(stg_things)")]
    assert columns == [
        "id", "weight_kg", "count", "price", "fragile", "made_on", "seen_at", "colour",
        "is_red", "kind",
    ]  # fmt: skip
    raw = [r[1] for r in _rows(built, "pragma table_info(raw_things)")]
    assert raw[1] == "Weight (kg), net"


def test_nothing_is_lost_and_raw_values_stay_as_received(built):
    (raw,) = _rows(built, "select count(*) from raw_things")[0]
    (clean,) = _rows(built, "select count(*) from stg_things")[0]
    (rejected,) = _rows(built, "select count(*) from rejected_things")[0]
    assert raw == clean + rejected == len(THINGS) + 1
    assert _rows(built, "select kind from rejected_things where id = '20'") == [
        ("'); drop table raw_things; --",)
    ]


def test_patterns_and_references_to_rejected_rows(built):
    assert _rows(built, "select code, reject_reason from rejected_kinds") == [
        ("abc-3", "code does not match [A-Z]{3}-[0-9]{3}")
    ]


def test_duplicate_policies_without_a_key(built):
    assert _rows(built, "select what, reject_reason from rejected_events order by 1") == [
        ("close", "duplicate row"),
        ("close", "duplicate row"),
    ]
    assert _rows(built, "select row_name, line from stg_log order by 1") == [
        (1, "hello"),
        (2, "hello"),
    ]
    # dbt's CSV reader names the unnamed column by its position.
    assert [r[1] for r in _rows(built, "pragma table_info(raw_log)")] == ["a", "line"]
