"""Check every raw CSV against its declaration before anything is loaded.

Problems are reported as ``file:line:column: message`` (1-based, lines as an
editor shows them), all files at once, so that one run tells the whole story.
Parsing uses the standard library's :mod:`csv` (quoted commas, quotes and
newlines, CRLF); nothing here splits lines by hand.

The work per byte is bounded whatever a file holds: files are streamed line
by line (each line at most :data:`MAX_LINE_BYTES`), the header is capped
(:data:`MAX_HEADER_BYTES`, :data:`MAX_COLUMNS`), the delimiter is found by
counting candidates outside quotes (``csv.Sniffer`` is quadratic in the line
length), and at most :data:`MAX_PROBLEMS_PER_FILE` problems are listed per
file, followed by the exact count of the rest.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

# Problem and BadInput live in dq.contracts (the declarations report their
# problems the same way); they are re-exported here, where callers look.
from dq.contracts import BadInput, ContractError, Problem
from dq.sources import Source, load_sources

__all__ = ["BadInput", "ContractError", "Problem", "check_all", "check_file"]

#: What a wrong delimiter usually is (what ``csv.Sniffer`` was asked to find).
DELIMITERS = ",;\t|"

MAX_HEADER_BYTES = 64 * 1024
MAX_COLUMNS = 4096
#: A data line (one physical line; a quoted newline starts the next) longer
#: than this is refused rather than held in memory.
MAX_LINE_BYTES = 1024 * 1024
MAX_PROBLEMS_PER_FILE = 20

_BOM = b"\xef\xbb\xbf"
# Lines are split on "\n" while reading bytes; a lone "\r" also ends a line
# for csv (as io.StringIO(newline="") would split it), so split those too.
_AFTER_LONE_CR = re.compile(r"(?<=\r)(?!\n)")


class _Stop(Exception):
    """Reading a file cannot go on; ``problem`` says where and why."""

    def __init__(self, problem: Problem):
        self.problem = problem


class _Problems:
    """The problems of one file: the first few listed, the rest counted."""

    def __init__(self, path: Path, limit: int = MAX_PROBLEMS_PER_FILE):
        self.path, self.limit = path, limit
        self.listed: list[Problem] = []
        self.unlisted = 0

    def add(self, problem: Problem) -> None:
        if len(self.listed) < self.limit:
            self.listed.append(problem)
        else:
            self.unlisted += 1

    def __bool__(self) -> bool:
        return bool(self.listed)

    def result(self) -> list[Problem]:
        if not self.unlisted:
            return self.listed
        more = f"... and {self.unlisted} more problems in this file"
        return [*self.listed, Problem(self.path, None, None, more)]


def _column(line: bytes, offset: int, encoding: str = "utf-8") -> int:
    """1-based character column of byte ``offset`` in ``line``."""
    return len(line[:offset].decode(encoding, errors="replace")) + 1


def _label(encoding: str) -> str:
    name = codecs.lookup(encoding).name
    return "UTF-8" if name == "utf-8" else name


def _decode(path: Path, number: int, line: bytes, encoding: str = "utf-8") -> str:
    """One line as text; an invalid byte stops the file with its position."""
    try:
        return line.decode(encoding)
    except UnicodeDecodeError as exc:
        byte = line[exc.start : exc.start + 1].hex()
        raise _Stop(
            Problem(
                path,
                number,
                _column(line, exc.start, encoding),
                f"not valid {_label(encoding)} (byte 0x{byte}); save the file as"
                f" {_label(encoding)} or declare its encoding (file: encoding:)",
            )
        ) from None


def _readline(fh: BinaryIO, limit: int) -> tuple[bytes, bool]:
    """The next line, and whether it is longer than ``limit`` bytes (newline
    excluded); a longer line is cut after ``limit`` bytes, never read whole."""
    line = fh.readline(limit + 1)
    if len(line) > limit and not line.endswith(b"\n"):
        return line[:limit], True
    return line, False


def _text_lines(path: Path, fh: BinaryIO, first: str, encoding: str) -> Iterator[str]:
    """``first`` (the decoded header line), then every further line as text,
    each read with a bounded ``readline`` so that memory stays bounded too."""
    yield from _split_lone_cr(first)
    number = 1
    while True:
        line, too_long = _readline(fh, MAX_LINE_BYTES)
        if not line:
            return
        number += 1
        if too_long:
            raise _Stop(
                Problem(
                    path,
                    number,
                    None,
                    f"line is longer than {MAX_LINE_BYTES} bytes; is this a CSV file?",
                )
            )
        yield from _split_lone_cr(_decode(path, number, line, encoding))


def _split_lone_cr(line: str) -> list[str]:
    if "\r" not in line[:-2]:
        return [line]
    return [piece for piece in _AFTER_LONE_CR.split(line) if piece]


def _other_delimiter(header_line: str, delimiter: str, columns: int) -> str | None:
    """The likeliest delimiter when the header lacks the declared one outside quotes.

    Linear: splitting on '"' leaves the text outside quotes at even positions
    ("" inside a quoted field toggles twice, so it stays inside).
    """
    outside = "".join(header_line.split('"')[::2])
    if delimiter in outside or columns == 1:
        return None
    counts = {d: outside.count(d) for d in DELIMITERS if d != delimiter}
    best = max(counts, key=counts.get)
    return best if counts[best] else None


def _is_blank(fh: BinaryIO) -> bool:
    """True when the rest of the file is only whitespace (read in chunks)."""
    while chunk := fh.read(MAX_HEADER_BYTES):
        if chunk.strip():
            return False
    return True


def _check_header(path: Path, header: list[str], source: Source, problems: _Problems) -> None:
    expected = list(source.headers)
    if header == expected:
        return
    found = len(problems.listed) + problems.unlisted
    expected_set = set(expected)
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name in seen:
            problems.add(
                Problem(path, 1, position, f"duplicated column {name!r} (also column {seen[name]})")
            )
        seen.setdefault(name, position)
    missing = [c for c in expected if c not in seen]
    extra = [(i, c) for i, c in enumerate(header, start=1) if c not in expected_set]
    for position, name in extra:
        renamed = expected[position - 1] if position <= len(expected) else None
        if renamed in missing:
            problems.add(
                Problem(path, 1, position, f"column {name!r} should be {renamed!r} (renamed?)")
            )
            missing.remove(renamed)
        else:
            problems.add(Problem(path, 1, position, f"unexpected column {name!r}"))
    for name in missing:
        problems.add(
            Problem(path, 1, None, f"missing column {name!r}; expected {', '.join(expected)}")
        )
    if len(problems.listed) + problems.unlisted == found:
        problems.add(
            Problem(path, 1, None, f"columns out of order; expected {', '.join(expected)}")
        )
    if len(problems.listed) < problems.limit:
        problems.add(
            Problem(
                path,
                1,
                None,
                f"the header differs from {source.path.name}: if the file changed shape on"
                " purpose, `python -m dq add-source <this file> --update` proposes the new"
                " declaration as a diff",
            )
        )


def _read_header_line(path: Path, fh: BinaryIO, encoding: str) -> str:
    """The first line as text (after a BOM, if any); refuses one over the cap."""
    if fh.read(len(_BOM)) != _BOM:
        fh.seek(0)
    head, too_long = _readline(fh, MAX_HEADER_BYTES)
    if too_long:
        raise _Stop(
            Problem(
                path,
                1,
                _column(head, MAX_HEADER_BYTES),
                f"header line is longer than {MAX_HEADER_BYTES} bytes; "
                "is this a CSV file with a header?",
            )
        )
    return _decode(path, 1, head, encoding)


def _check_rows(path: Path, fh: BinaryIO, source: Source, problems: _Problems) -> None:
    first = _read_header_line(path, fh, source.encoding)
    if not first.strip():
        if _is_blank(fh):
            problems.add(
                Problem(path, None, None, "file is empty; expected a header and data rows")
            )
        else:
            problems.add(Problem(path, 1, None, "line 1 is blank; expected the header"))
        return
    delimiter = source.delimiter
    other = _other_delimiter(first, delimiter, len(source.columns))
    if other:
        problems.add(
            Problem(
                path,
                1,
                None,
                f"delimiter is {other!r}; {source.path.name} declares {delimiter!r}",
            )
        )
        return
    reader = csv.reader(
        _text_lines(path, fh, first, source.encoding), delimiter=delimiter, strict=True
    )
    try:
        header = next(reader)
    except csv.Error as exc:
        problems.add(Problem(path, 1, None, f"unreadable header: {exc}"))
        return
    if len(header) > MAX_COLUMNS:
        problems.add(
            Problem(
                path,
                1,
                MAX_COLUMNS + 1,
                f"{len(header)} columns; at most {MAX_COLUMNS} are accepted "
                f"({source.path.name} declares {len(source.columns)})",
            )
        )
        return
    _check_header(path, header, source, problems)
    if problems:
        return
    rows = 0
    try:
        for record in reader:
            if not record:
                continue  # csv yields [] for a blank line; dbt skips it too
            rows += 1
            if len(record) != len(header):
                # line_num is the line the record ends on; a quoted newline moves it.
                problems.add(
                    Problem(
                        path,
                        reader.line_num,
                        min(len(record), len(header)) + 1,
                        f"expected {len(header)} fields, found {len(record)}",
                    )
                )
    except csv.Error as exc:
        problems.add(Problem(path, reader.line_num, None, f"malformed CSV: {exc}"))
    if rows == 0 and not problems:
        problems.add(Problem(path, None, None, "header only: the file has no data rows"))


def check_file(path: Path, source: Source) -> list[Problem]:
    """All problems of one CSV file (an empty list when it is fine).

    Streams the file: time is linear in its size and memory bounded by
    :data:`MAX_LINE_BYTES`, whatever the file holds.
    """
    path = Path(path)
    problems = _Problems(path)
    try:
        with open(path, "rb") as fh:
            _check_rows(path, fh, source, problems)
    except FileNotFoundError:
        return [Problem(path, None, None, f"file is missing (declared by {source.path.name})")]
    except IsADirectoryError:
        return [Problem(path, None, None, "is a folder, not a file")]
    except OSError as exc:  # permissions, I/O errors: still bad input, not a traceback
        return [Problem(path, None, None, f"cannot be read: {exc.strerror or exc}")]
    except _Stop as stop:
        problems.add(stop.problem)
    return problems.result()


def check_all(seeds_dir: Path) -> dict[str, int]:
    """Check every declaration and every declared CSV; raise :class:`BadInput`
    (:class:`ContractError` for a declaration) listing every problem.

    Returns the byte size per raw table for the run summary.
    """
    seeds_dir = Path(seeds_dir)
    sources = load_sources(seeds_dir)
    problems: list[Problem] = []
    for source in sources.values():
        problems += check_file(seeds_dir / source.csv_name, source)
    known = {s.csv_name for s in sources.values()}
    for path in sorted(seeds_dir.glob("*.csv")):
        if path.name not in known:
            problems.append(
                Problem(
                    path,
                    None,
                    None,
                    "no declaration for this file: name it raw_<noun>.csv beside a <noun>.yml,"
                    " or run `python -m dq add-source <file>`",
                )
            )
    if problems:
        raise BadInput(problems)
    return {s.raw_table: (seeds_dir / s.csv_name).stat().st_size for s in sources.values()}


def to_utf8(path: Path, encoding: str) -> None:
    """Re-encode a checked file to UTF-8 in place (dbt reads UTF-8 only); streamed."""
    if codecs.lookup(encoding).name == "utf-8":
        return
    temporary = path.with_name(path.name + ".utf8")
    with (
        open(path, encoding=encoding, newline="") as source,
        open(temporary, "w", encoding="utf-8", newline="") as target,
    ):
        while chunk := source.read(1 << 20):
            target.write(chunk)
    temporary.replace(path)
