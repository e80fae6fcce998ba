"""Preflight in-process: linear time on any file, capped output, safe names and
located declaration errors. (The catalogue of broken CSVs is tests/test_bad_files.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dq import cli, preflight
from dq.contracts import ContractError, Problem
from dq.sources import load_sources
from tests.conftest import REPO

MB = 1024 * 1024


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    """A copy of the bundled seeds and their declarations."""
    return Path(shutil.copytree(REPO / "seeds", tmp_path / "seeds"))


@pytest.fixture
def orders(seeds: Path):
    """(path of raw_orders.csv, its declaration, its header line as bytes)."""
    path = seeds / "raw_orders.csv"
    with open(path, "rb") as fh:
        header = fh.readline()
    return path, load_sources(seeds)["orders"], header


def _messages(seeds: Path) -> list[str]:
    with pytest.raises(preflight.BadInput) as caught:
        preflight.check_all(seeds)
    return [str(p) for p in caught.value.problems]


# --------------------------------------------------------------- linear time, bounded memory


def test_10_mb_single_line_file_is_refused_at_the_header_cap(orders):
    path, contract, _ = orders
    path.write_bytes(b"a," * (5 * MB))  # 10 MB, no newline: csv.Sniffer took hours on this
    [problem] = preflight.check_file(path, contract)
    assert str(problem) == (
        f"{path}:1:65537: header line is longer than 65536 bytes; is this a CSV file with a header?"
    )


def test_1_mb_header_is_refused_also_after_a_bom(orders):
    path, contract, _ = orders
    path.write_bytes(b"\xef\xbb\xbf" + b"id," * (MB // 3) + b"\n1,2\n")
    [problem] = preflight.check_file(path, contract)
    assert (problem.line, problem.column) == (1, preflight.MAX_HEADER_BYTES + 1)
    assert "header line is longer than 65536 bytes" in problem.message


def test_10_mb_data_line_is_refused_without_reading_it_whole(orders):
    path, contract, header = orders
    path.write_bytes(header + b"1,2,3,4,5,6,7\n" + b"x" * (10 * MB) + b"\n")
    [problem] = preflight.check_file(path, contract)
    assert str(problem) == f"{path}:3: line is longer than 1048576 bytes; is this a CSV file?"


def test_10_mb_of_good_rows_passes(orders):
    path, contract, header = orders
    rows = path.read_bytes()[len(header) :]
    path.write_bytes(header + rows * (10 * MB // len(rows) + 1))
    assert path.stat().st_size > 10 * MB
    assert preflight.check_file(path, contract) == []


def test_a_folder_in_place_of_a_file_is_bad_input(orders):
    path, contract, _ = orders
    path.unlink()
    path.mkdir()
    assert [str(p) for p in preflight.check_file(path, contract)] == [
        f"{path}: is a folder, not a file"
    ]


def test_bom_and_crlf_are_fine(orders):
    path, contract, _ = orders
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    assert preflight.check_file(path, contract) == []


def test_quoted_delimiters_do_not_count(orders):
    path, contract, _ = orders
    path.write_text('"a,b";"c,d"\n1;2\n', encoding="utf-8")
    [problem] = preflight.check_file(path, contract)
    assert problem.message == "delimiter is ';'; orders.yml declares ','"


def test_more_columns_than_the_cap_are_refused(orders):
    path, contract, _ = orders
    path.write_text(",".join(f"c{i}" for i in range(5000)) + "\n", encoding="utf-8")
    [problem] = preflight.check_file(path, contract)
    assert (
        str(problem)
        == f"{path}:1:4097: 5000 columns; at most 4096 are accepted (orders.yml declares 7)"
    )


# --------------------------------------------------------------- at most 20 problems per file


def test_2000_column_file_lists_20_problems_then_the_exact_rest(orders):
    path, contract, _ = orders
    header = [f"c{i}" for i in range(2000)]
    path.write_text(",".join(header) + "\n" + ",".join("x" * 2000) + "\n", encoding="utf-8")
    problems = preflight.check_file(path, contract)
    # 7 renamed columns (positions 1..7) + 1,993 unexpected ones = 2,000 problems.
    assert len(problems) == 21
    assert problems[6].message == "column 'c6' should be 'order_total' (renamed?)"
    assert problems[19].message == "unexpected column 'c19'"
    assert str(problems[20]) == f"{path}: ... and 1980 more problems in this file"


def test_ragged_rows_are_counted_beyond_the_cap(orders):
    path, contract, header = orders
    path.write_bytes(header + b"1,2\n" * 100)
    problems = preflight.check_file(path, contract)
    assert [p.line for p in problems[:20]] == list(range(2, 22))
    assert problems[20].message == "... and 80 more problems in this file"


# --------------------------------------------------------------- names printed safely


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        # Unescaped, the second line would read as a problem in raw_orders.csv.
        ("evil\nraw_orders.csv:1:1: forged.csv", "evil\\nraw_orders.csv:1:1: forged.csv"),
        ("\x1b[31mred\x1b[0m.csv", "\\x1b[31mred\\x1b[0m.csv"),
        ("back\\slash\r.csv", "back\\\\slash\\r.csv"),
        ("rtl\u202eSV.csv", "rtl\\u202eSV.csv"),
    ],
)
def test_file_names_cannot_forge_output_lines(seeds, monkeypatch, capsys, name, escaped):
    (seeds / name).write_text("id\n1\n", encoding="utf-8")
    [message] = _messages(seeds)
    assert message.startswith(f"{seeds}/{escaped}: no declaration for this file")
    monkeypatch.setenv("DQ_SEEDS_DIR", str(seeds))
    assert cli.main(["preflight"]) == 2
    assert capsys.readouterr().err == message + "\n"


def test_problem_messages_are_escaped_too():
    problem = Problem(Path("seeds/a.csv"), 1, 2, "expected id, na\nme\x1b[2J")
    assert str(problem) == "seeds/a.csv:1:2: expected id, na\\nme\\x1b[2J"


# --------------------------------------------------------------- declarations


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines()) if needle in line) + 1


@pytest.mark.parametrize("name", ["Raw Orders", "1abc", "x.csv", "UPPER", "a-b"])
def test_declaration_names_are_plain_nouns(seeds, name):
    (seeds / f"{name}.yml").write_text("columns: {id: {}}\n", encoding="utf-8")
    with pytest.raises(ContractError) as caught:
        load_sources(seeds)
    [problem] = caught.value.problems
    assert problem.path == seeds / f"{name}.yml"
    assert f"{name!r} is not a source noun" in problem.message


BROKEN_DECLARATIONS = {
    # name: (file, old text, new text, the text on the reported line, message)
    "unknown type": (
        "orders.yml",
        "type: timestamp",
        "type: datetime",
        "ordered_at:",
        "ordered_at: type must be one of text, integer",
    ),
    "key not a column": ("products.yml", "key: sku", "key: code", "key: code", "key 'code'"),
    "undeclared reference": (
        "items.yml",
        "references: orders",
        "references: invoices",
        "references: invoices",
        "order_id: no source 'invoices' is declared",
    ),
    "no columns": (
        "customers.yml",
        "columns:\n",
        "kolumns:\n",
        "  id:",
        "unknown key 'kolumns'",
    ),
    "YAML syntax error": (
        "stores.yml",
        "{name: location_id}",
        "{name: location_id",
        "location_name",
        "not valid YAML",
    ),
    "bad clean name": (
        "stores.yml",
        "name: location_name,",
        "name: Location Name,",
        "Location Name",
        "clean name 'Location Name' must be snake_case",
    ),
    "keyword as clean name": (
        "stores.yml",
        "name: location_name,",
        "name: select,",
        "name: select",
        "not an SQL keyword",
    ),
    "range on text": (
        "customers.yml",
        "required: true,",
        "required: true, min: 0,",
        "min: 0",
        "name: 'min' is for integer",
    ),
    "misspelt setting": (
        "supplies.yml",
        "required: true, min: 0",
        "requird: true, min: 0",
        "requird",
        "cost: unknown setting 'requird'",
    ),
    "bad pattern": (
        "customers.yml",
        "required: true,",
        "required: true, pattern: '[a-',",
        "pattern",
        "name: pattern is not a regular expression",
    ),
}


@pytest.mark.parametrize("case", BROKEN_DECLARATIONS, ids=list(BROKEN_DECLARATIONS))
def test_broken_declaration_is_bad_input_with_its_line(seeds, monkeypatch, capsys, case):
    name, old, new, needle, message = BROKEN_DECLARATIONS[case]
    path = seeds / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    line = _line_of(text, needle)
    with pytest.raises(ContractError) as caught:
        preflight.check_all(seeds)
    assert isinstance(caught.value, preflight.BadInput)  # what dq.pipeline turns into exit 2
    assert any(p.line == line and message in p.message for p in caught.value.problems), [
        str(p) for p in caught.value.problems
    ]
    monkeypatch.setenv("DQ_SEEDS_DIR", str(seeds))
    assert cli.main(["preflight"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line}:" in err and message in err and "Traceback" not in err


def test_reference_cycles_are_refused(seeds):
    path = seeds / "customers.yml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "required: true,", "required: true, references: orders,"
        ),
        encoding="utf-8",
    )
    with pytest.raises(ContractError) as caught:
        load_sources(seeds)
    assert any(
        "references form a cycle: customers -> orders -> customers" in p.message
        for p in caught.value.problems
    ), caught.value.problems


def test_no_declarations_is_bad_input(seeds):
    for path in seeds.glob("*.yml"):
        path.unlink()
    assert _messages(seeds) == [f"{seeds}: no source declarations (<noun>.yml) in this folder"]


def test_bundled_declarations_load():
    sources = load_sources(REPO / "seeds")
    assert sources["supplies"].key == ("id", "sku")
    assert sources["orders"].headers[:2] == ("id", "customer")
    assert sources["orders"].max_rejected_share == 0.05
    assert sources["orders"].references == ("customers", "stores")
    assert sources["items"].column("sku").name == "product_id"
