"""Preflight in-process: linear time on any file, capped output, safe names and
located contract errors. (The catalogue of broken CSVs is tests/test_bad_files.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dq import cli, preflight
from dq.contracts import CONTRACT_FILE, ContractError, Problem, load_contracts
from tests.conftest import REPO

MB = 1024 * 1024


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    """A copy of the bundled seeds and their contract file."""
    return Path(shutil.copytree(REPO / "seeds", tmp_path / "seeds"))


@pytest.fixture
def orders(seeds: Path):
    """(path of raw_orders.csv, its contract, its header line as bytes)."""
    path = seeds / "raw_orders.csv"
    with open(path, "rb") as fh:
        header = fh.readline()
    return path, load_contracts(seeds)["raw_orders"], header


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
    assert problem.message == "delimiter is ';'; expected ','"


def test_more_columns_than_the_cap_are_refused(orders):
    path, contract, _ = orders
    path.write_text(",".join(f"c{i}" for i in range(5000)) + "\n", encoding="utf-8")
    [problem] = preflight.check_file(path, contract)
    assert (
        str(problem)
        == f"{path}:1:4097: 5000 columns; at most 4096 are accepted (the contract has 7)"
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
    assert message == f"{seeds}/{escaped}: no contract for this file in _seeds.yml"
    monkeypatch.setenv("DQ_SEEDS_DIR", str(seeds))
    assert cli.main(["preflight"]) == 2
    assert capsys.readouterr().err == message + "\n"


def test_problem_messages_are_escaped_too():
    problem = Problem(Path("seeds/a.csv"), 1, 2, "expected id, na\nme\x1b[2J")
    assert str(problem) == "seeds/a.csv:1:2: expected id, na\\nme\\x1b[2J"


# --------------------------------------------------------------- the contract file


def _line_of(text: str, needle: str, after: str | None = None) -> int:
    lines = text.splitlines()
    start = lines.index(after) if after else 0
    return next(i for i, line in enumerate(lines) if i >= start and needle in line) + 1


@pytest.mark.parametrize("name", ["../x", "a/b", "/etc/passwd", "raw orders", "1abc", "x.csv"])
def test_seed_names_cannot_leave_the_seeds_folder(seeds, name):
    contract = seeds / CONTRACT_FILE
    text = contract.read_text(encoding="utf-8")
    contract.write_text(text.replace("- name: raw_items", f"- name: {name!r}"), encoding="utf-8")
    with pytest.raises(ContractError) as caught:
        load_contracts(seeds)
    [problem] = caught.value.problems
    assert (problem.path, problem.line) == (contract, _line_of(text, "- name: raw_items"))
    assert f"seed name {name!r} must be letters, digits and underscores" in problem.message


BROKEN_CONTRACTS = {
    # name: (edit of the bundled _seeds.yml, the line it is reported on, message)
    "missing meta": (
        lambda t: t.replace(
            "      meta: {staging: stg_products, primary_key: sku, max_rejected_share: 0.0}\n", ""
        ),
        lambda t: _line_of(t, "column_types:", after="  - name: raw_products"),
        "raw_products: 'meta' is missing",
    ),
    "missing primary_key": (
        lambda t: t.replace("primary_key: id, max_rejected_share: 0.0}", "max_rejected_share: 0}"),
        lambda t: _line_of(t, "meta:", after="  - name: raw_stores"),
        "raw_stores: 'primary_key' is missing",
    ),
    "missing staging": (
        lambda t: t.replace("staging: stg_order_items, ", ""),
        lambda t: _line_of(t, "meta:", after="  - name: raw_items"),
        "raw_items: 'staging' is missing",
    ),
    "missing column_types": (
        lambda t: t.replace("      column_types: {id: text, name: text}\n", ""),
        lambda t: _line_of(t, "meta:", after="  - name: raw_customers"),
        "raw_customers: 'column_types' is missing",
    ),
    "seeds not a list": (
        lambda t: t.replace("seeds:\n", "seeds: raw_orders\nold_seeds:\n"),
        lambda t: _line_of(t, "seeds:"),
        "'seeds' must be a list of seeds, not 'raw_orders'",
    ),
    "YAML syntax error": (
        lambda t: t.replace("{id: text, name: text}", "{id: text, name: text"),
        lambda t: _line_of(t, "meta:", after="  - name: raw_customers"),
        "not valid YAML",
    ),
    "primary key not a column": (
        lambda t: t.replace("primary_key: sku,", "primary_key: code,"),
        lambda t: _line_of(t, "meta:", after="  - name: raw_products"),
        "raw_products: primary_key ['code'] is not its columns",
    ),
}


@pytest.mark.parametrize("case", BROKEN_CONTRACTS, ids=list(BROKEN_CONTRACTS))
def test_broken_contract_is_bad_input_with_its_line(seeds, monkeypatch, capsys, case):
    edit, line_of, message = BROKEN_CONTRACTS[case]
    contract = seeds / CONTRACT_FILE
    text = edit(contract.read_text(encoding="utf-8"))
    contract.write_text(text, encoding="utf-8")
    line = line_of(text)
    with pytest.raises(ContractError) as caught:
        preflight.check_all(seeds)
    assert isinstance(caught.value, preflight.BadInput)  # what dq.pipeline turns into exit 2
    assert any(p.line == line and message in p.message for p in caught.value.problems), [
        str(p) for p in caught.value.problems
    ]
    monkeypatch.setenv("DQ_SEEDS_DIR", str(seeds))
    assert cli.main(["preflight"]) == 2
    err = capsys.readouterr().err
    assert f"{contract}:{line}:" in err and message in err and "Traceback" not in err


def test_missing_contract_file_is_bad_input(seeds):
    (seeds / CONTRACT_FILE).unlink()
    assert _messages(seeds) == [f"{seeds / CONTRACT_FILE}: contract file missing"]


def test_bundled_contracts_load():
    contracts = load_contracts(REPO / "seeds")
    assert contracts["raw_supplies"].primary_key == ("id", "sku")
    assert contracts["raw_orders"].columns[:2] == ("id", "customer")
    assert contracts["raw_orders"].max_rejected_share == 0.05
