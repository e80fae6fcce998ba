"""File-level bad input: a clear message (file, line, column) and exit 2, before
anything is loaded; the published warehouse stays byte-for-byte unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli, sha256

ORDERS_HEADER = "id,customer,ordered_at,store_id,subtotal,tax_paid,order_total"


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def empty(seeds: Path):
    (seeds / "raw_stores.csv").write_bytes(b"")
    return "raw_stores.csv: file is empty"


def header_only(seeds: Path):
    p = seeds / "raw_stores.csv"
    p.write_text(_lines(p)[0], encoding="utf-8")
    return "raw_stores.csv: header only"


def ragged_long(seeds: Path):
    p = seeds / "raw_orders.csv"
    lines = _lines(p)
    lines[4] = lines[4].rstrip("\n") + ",extra\n"
    p.write_text("".join(lines), encoding="utf-8")
    return "raw_orders.csv:5:8: expected 7 fields, found 8"


def ragged_short(seeds: Path):
    p = seeds / "raw_items.csv"
    lines = _lines(p)
    lines[9] = lines[9].rsplit(",", 1)[0] + "\n"
    p.write_text("".join(lines), encoding="utf-8")
    return "raw_items.csv:10:3: expected 3 fields, found 2"


def wrong_delimiter(seeds: Path):
    p = seeds / "raw_stores.csv"
    p.write_text(p.read_text(encoding="utf-8").replace(",", ";"), encoding="utf-8")
    return "raw_stores.csv:1: delimiter is ';'; expected ','"


def tab_delimiter(seeds: Path):
    p = seeds / "raw_products.csv"
    import csv
    import io

    rows = list(csv.reader(io.StringIO(p.read_text(encoding="utf-8"))))
    out = io.StringIO()
    csv.writer(out, delimiter="\t", lineterminator="\n").writerows(rows)
    p.write_text(out.getvalue(), encoding="utf-8")
    return "raw_products.csv:1: delimiter is '\\t'; expected ','"


def invalid_utf8(seeds: Path):
    p = seeds / "raw_customers.csv"
    data = p.read_bytes().split(b"\n")
    data[2] = data[2][:37] + b",Ren\xe9e Latin-1"  # line 3: 'é' as a Latin-1 byte
    p.write_bytes(b"\n".join(data))
    return "raw_customers.csv:3:42: not valid UTF-8 (byte 0xe9)"


def missing_column(seeds: Path):
    p = seeds / "raw_orders.csv"
    import csv
    import io

    rows = list(csv.reader(io.StringIO(p.read_text(encoding="utf-8"))))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([r[:5] + r[6:] for r in rows])
    p.write_text(out.getvalue(), encoding="utf-8")
    return "raw_orders.csv:1: missing column 'tax_paid'"


def renamed_column(seeds: Path):
    p = seeds / "raw_orders.csv"
    p.write_text(
        p.read_text(encoding="utf-8").replace("ordered_at", "ordered_on", 1), encoding="utf-8"
    )
    return "raw_orders.csv:1:3: column 'ordered_on' should be 'ordered_at' (renamed?)"


def duplicated_column(seeds: Path):
    p = seeds / "raw_customers.csv"
    p.write_text(p.read_text(encoding="utf-8").replace("id,name", "id,id", 1), encoding="utf-8")
    return "raw_customers.csv:1:2: duplicated column 'id' (also column 1)"


def extra_column(seeds: Path):
    p = seeds / "raw_stores.csv"
    lines = _lines(p)
    lines = [lines[0].rstrip("\n") + ",manager\n"] + [ln.rstrip("\n") + ",x\n" for ln in lines[1:]]
    p.write_text("".join(lines), encoding="utf-8")
    return "raw_stores.csv:1:5: unexpected column 'manager'"


def reordered_columns(seeds: Path):
    p = seeds / "raw_customers.csv"
    lines = [",".join(reversed(ln.rstrip("\n").split(","))) + "\n" for ln in _lines(p)]
    p.write_text("".join(lines), encoding="utf-8")
    return "raw_customers.csv:1: columns out of order; expected id, name"


def sql_in_header(seeds: Path):
    p = seeds / "raw_customers.csv"
    p.write_text(
        p.read_text(encoding="utf-8").replace(
            "id,name", 'id,"name text); drop table raw_orders; --"', 1
        ),
        encoding="utf-8",
    )
    return "raw_customers.csv:1:2: column 'name text); drop table raw_orders; --' should be 'name'"


def missing_file(seeds: Path):
    (seeds / "raw_supplies.csv").unlink()
    return "raw_supplies.csv: file is missing (contract raw_supplies)"


def unknown_file(seeds: Path):
    (seeds / "raw_tweets.csv").write_text("id,content\n1,hello\n", encoding="utf-8")
    return "raw_tweets.csv: no contract for this file in _seeds.yml"


def unterminated_quote(seeds: Path):
    p = seeds / "raw_products.csv"
    p.write_text(
        p.read_text(encoding="utf-8") + 'BEV-099,"never closed,beverage,500,x\n', encoding="utf-8"
    )
    return "raw_products.csv:12: malformed CSV"


CASES = [
    empty,
    header_only,
    ragged_long,
    ragged_short,
    wrong_delimiter,
    tab_delimiter,
    invalid_utf8,
    missing_column,
    renamed_column,
    duplicated_column,
    extra_column,
    reordered_columns,
    sql_in_header,
    missing_file,
    unknown_file,
    unterminated_quote,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_file_exits_2_with_location_and_publishes_nothing(published_project, case):
    root, before = published_project
    expected = case(root / "seeds")
    result = run_cli(root, "run")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "BAD INPUT (exit 2)" in result.stdout
    assert expected in result.stdout, result.stdout
    # Nothing loaded, nothing published.
    assert sha256(root / "warehouse" / "jaffle_shop.db") == before
    assert not (root / "warehouse" / "build" / "jaffle_shop.db").exists()


def test_preflight_verb_lists_every_problem_at_once(project):
    ragged_long(project / "seeds")
    renamed_column_customers = project / "seeds" / "raw_stores.csv"
    renamed_column_customers.write_text(
        renamed_column_customers.read_text(encoding="utf-8").replace("tax_rate", "rate", 1),
        encoding="utf-8",
    )
    result = run_cli(project, "preflight")
    assert result.returncode == 2
    assert "raw_orders.csv:5:8" in result.stderr
    assert "raw_stores.csv:1:4: column 'rate' should be 'tax_rate'" in result.stderr
