"""Check every raw CSV against its contract before anything is loaded.

Problems are reported as ``file:line:column: message`` (1-based, lines as an
editor shows them), all files at once, so that one run tells the whole story.
Parsing uses the standard library's :mod:`csv` (quoted commas, quotes and
newlines, CRLF); nothing here splits lines by hand.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path

from dq.contracts import CONTRACT_FILE, Contract, load_contracts

DELIMITER = ","


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file."""

    path: Path
    line: int | None
    column: int | None
    message: str

    def __str__(self) -> str:
        where = str(self.path)
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


class BadInput(Exception):
    """Raised when preflight finds problems; ``problems`` lists them all."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _decode(path: Path, data: bytes) -> tuple[str | None, Problem | None]:
    """UTF-8 (a BOM is accepted); on failure, point at the offending byte."""
    try:
        return codecs.decode(data, "utf-8-sig"), None
    except UnicodeDecodeError as exc:
        offset = exc.start
        line = data.count(b"\n", 0, offset) + 1
        line_start = data.rfind(b"\n", 0, offset) + 1
        column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
        byte = data[offset : offset + 1].hex()
        return None, Problem(
            path, line, column, f"not valid UTF-8 (byte 0x{byte}); save the file as UTF-8"
        )


def _sniff_delimiter(header_line: str) -> str | None:
    try:
        return csv.Sniffer().sniff(header_line, delimiters=",;\t|").delimiter
    except csv.Error:
        return None


def _check_header(path: Path, header: list[str], contract: Contract) -> list[Problem]:
    expected = list(contract.columns)
    if header == expected:
        return []
    problems = []
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name in seen:
            problems.append(
                Problem(path, 1, position, f"duplicated column {name!r} (also column {seen[name]})")
            )
        seen.setdefault(name, position)
    missing = [c for c in expected if c not in seen]
    extra = [(i, c) for i, c in enumerate(header, start=1) if c not in expected]
    for position, name in extra:
        renamed = expected[position - 1] if position <= len(expected) else None
        if renamed in missing:
            problems.append(
                Problem(path, 1, position, f"column {name!r} should be {renamed!r} (renamed?)")
            )
            missing.remove(renamed)
        else:
            problems.append(Problem(path, 1, position, f"unexpected column {name!r}"))
    for name in missing:
        problems.append(
            Problem(path, 1, None, f"missing column {name!r}; expected {', '.join(expected)}")
        )
    if not problems:
        problems.append(
            Problem(path, 1, None, f"columns out of order; expected {', '.join(expected)}")
        )
    return problems


def check_file(path: Path, contract: Contract) -> list[Problem]:
    """All problems of one CSV file (an empty list when it is fine)."""
    if not path.exists():
        return [Problem(path, None, None, f"file is missing (contract {contract.name})")]
    data = path.read_bytes()
    if not data.strip():
        return [Problem(path, None, None, "file is empty; expected a header and data rows")]
    text, problem = _decode(path, data)
    if problem:
        return [problem]
    first_line = text.splitlines()[0]
    delimiter = _sniff_delimiter(first_line)
    if delimiter and delimiter != DELIMITER and DELIMITER not in first_line:
        return [Problem(path, 1, None, f"delimiter is {delimiter!r}; expected {DELIMITER!r}")]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITER, strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        return [Problem(path, 1, None, f"unreadable header: {exc}")]
    problems = _check_header(path, header, contract)
    if problems:
        return problems
    rows = 0
    try:
        for record in reader:
            if not record:
                continue  # csv yields [] for a blank line; dbt skips it too
            rows += 1
            if len(record) != len(header):
                # line_num is the line the record ends on; a quoted newline moves it.
                problems.append(
                    Problem(
                        path,
                        reader.line_num,
                        min(len(record), len(header)) + 1,
                        f"expected {len(header)} fields, found {len(record)}",
                    )
                )
                if len(problems) >= 20:
                    problems.append(Problem(path, None, None, "more ragged rows not listed"))
                    break
    except csv.Error as exc:
        problems.append(Problem(path, reader.line_num, None, f"malformed CSV: {exc}"))
    if rows == 0 and not problems:
        problems.append(Problem(path, None, None, "header only: the file has no data rows"))
    return problems


def check_all(seeds_dir: Path) -> dict[str, int]:
    """Check every contracted file; raise :class:`BadInput` listing every problem.

    Returns the byte size per file for the run summary.
    """
    seeds_dir = Path(seeds_dir)
    if not (seeds_dir / CONTRACT_FILE).exists():
        raise BadInput([Problem(seeds_dir / CONTRACT_FILE, None, None, "contract file missing")])
    contracts = load_contracts(seeds_dir)
    problems: list[Problem] = []
    for contract in contracts.values():
        problems += check_file(seeds_dir / contract.file_name, contract)
    known = {c.file_name for c in contracts.values()}
    for path in sorted(seeds_dir.glob("*.csv")):
        if path.name not in known:
            problems.append(
                Problem(path, None, None, f"no contract for this file in {CONTRACT_FILE}")
            )
    if problems:
        raise BadInput(problems)
    return {c.name: (seeds_dir / c.file_name).stat().st_size for c in contracts.values()}
