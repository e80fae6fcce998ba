"""File-level bad input: a clear message (file, line, column) and exit 2, before
anything is loaded; the published warehouse stays byte-for-byte unchanged.

Each case below breaks a copy of the bundled seeds and returns the message
preflight must print. The cases run in-process against
:func:`dq.preflight.check_all` (milliseconds each); two subprocess runs prove
the wiring: ``python -m dq run`` exits 2, prints them and publishes nothing,
for bad CSVs and for a broken contract file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dq import cli, preflight
from tests.conftest import REPO, last_build_db, run_cli, sha256

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
    return "raw_stores.csv:1: delimiter is ';'; stores.yml declares ','"


def tab_delimiter(seeds: Path):
    p = seeds / "raw_products.csv"
    import csv
    import io

    rows = list(csv.reader(io.StringIO(p.read_text(encoding="utf-8"))))
    out = io.StringIO()
    csv.writer(out, delimiter="\t", lineterminator="\n").writerows(rows)
    p.write_text(out.getvalue(), encoding="utf-8")
    return "raw_products.csv:1: delimiter is '\\t'; products.yml declares ','"


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
    return "raw_supplies.csv: file is missing (declared by supplies.yml)"


def unknown_file(seeds: Path):
    (seeds / "raw_tweets.csv").write_text("id,content\n1,hello\n", encoding="utf-8")
    return "raw_tweets.csv: no declaration for this file"


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


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    """A copy of the bundled seeds and their declarations."""
    return Path(shutil.copytree(REPO / "seeds", tmp_path / "seeds"))


def _problems(seeds: Path) -> list[str]:
    with pytest.raises(preflight.BadInput) as caught:
        preflight.check_all(seeds)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_file_is_reported_with_its_location(seeds, case):
    expected = case(seeds)
    problems = _problems(seeds)
    assert any(expected in p for p in problems), problems
    # Only the broken file is reported; every other file is fine.
    assert {p.split(":")[0] for p in problems} == {str(seeds / expected.split(":")[0])}


def test_bundled_seeds_pass(seeds):
    sizes = preflight.check_all(seeds)
    assert set(sizes) == {
        f"raw_{t}" for t in ("customers", "orders", "items", "products", "stores", "supplies")
    }
    assert sizes["raw_orders"] == (seeds / "raw_orders.csv").stat().st_size


def test_run_exits_2_lists_every_bad_file_and_publishes_nothing(published_project):
    root, before = published_project
    expected = [case(root / "seeds") for case in (ragged_long, invalid_utf8, missing_file)]
    result = run_cli(root, "run")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "BAD INPUT (exit 2)" in result.stdout
    for message in expected:
        assert message in result.stdout, result.stdout
    # Nothing loaded, nothing published.
    assert sha256(root / "warehouse" / "jaffle_shop.db") == before
    assert not last_build_db(root).exists()  # nothing was loaded


def test_run_exits_2_on_a_broken_declaration_and_publishes_nothing(published_project):
    root, before = published_project
    declaration = root / "seeds" / "orders.yml"
    text = declaration.read_text(encoding="utf-8")
    declaration.write_text(text.replace("type: money", "type: monies", 1), encoding="utf-8")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "type: money" in t)
    result = run_cli(root, "run")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "BAD INPUT (exit 2)" in result.stdout
    assert f"orders.yml:{line}:" in result.stdout, result.stdout
    assert "subtotal: type must be one of" in result.stdout, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert sha256(root / "warehouse" / "jaffle_shop.db") == before
    assert not last_build_db(root).exists()  # nothing was loaded


def test_preflight_verb_lists_every_problem_at_once(seeds, monkeypatch, capsys):
    ragged_long(seeds)
    stores = seeds / "raw_stores.csv"
    stores.write_text(
        stores.read_text(encoding="utf-8").replace("tax_rate", "rate", 1), encoding="utf-8"
    )
    monkeypatch.setenv("DQ_SEEDS_DIR", str(seeds))
    assert cli.main(["preflight"]) == 2
    err = capsys.readouterr().err
    assert "raw_orders.csv:5:8: expected 7 fields, found 8" in err
    assert "raw_stores.csv:1:4: column 'rate' should be 'tax_rate'" in err
