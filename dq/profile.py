"""Profile a CSV and propose its source declaration (``dq add-source``).

:func:`profile` reads a file with pandas, every cell as the raw text it is
(``dtype=str``, no NA guessing), and infers the declaration that
docs/sources.md defines: encoding and delimiter, clean column names, types,
null tokens, a key, value sets, ranges and references to existing sources.
:func:`render` writes that declaration as YAML for a person to read.

Two promises shape every rule it proposes:

- **every row of the file passes** (a run on the same file rejects nothing):
  a rule is only proposed when all current values satisfy it, as the run will
  check them (after trimming, null tokens blank);
- **typical breakage is caught**: a letter in a number column, a blank where
  there never was one, an unknown category, a repeated key, a negative where
  all were >= 0, a date that is not one.

Where a rule is a guess (a value set that may be open, money units, a key
seen in one file only), a note says so: :attr:`Profile.notes` is what the
command prints under "unsure". Upper bounds are never inferred from the
observed maximum: next month's biggest order is not an error.

Values are examined once per distinct value, not per row (pandas factorizes
each column), so a 300,000-row file profiles in a few seconds.

CSV text is untrusted: it reaches the declaration only as YAML scalars dumped
by ``yaml.safe_dump`` (headers, value sets, true/false words), never as a
description, a rule, SQL or a path.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from dq.errors import BadInput
from dq.sources import RESERVED_NAMES

#: Cell texts that commonly mean "no value". One becomes a file-level null
#: (``file.nulls``) when it is seen in a column that is otherwise typed.
NULL_TOKENS = frozenset(
    ["NA", "N/A", "n/a", "na", "NaN", "nan", "null", "NULL", "Null", "None", "none"]
    + ["-", "--", "?", ".", "#N/A", "#NA"]
)

#: A noun names files and tables (raw_<noun>, stg_<noun>, ...); a clean name is a column.
MAX_NOUN, MAX_NAME = 40, 63
_NOUN = re.compile(rf"[a-z][a-z0-9_]{{0,{MAX_NOUN - 1}}}")
DELIMITERS = ",;\t|"
SAMPLE_BYTES = 64 * 1024
#: The largest share of rows a new source may quarantine before a run stops.
MAX_REJECTED_SHARE = 0.05
#: Below this many rows, "never blank" and closed value sets are not inferred.
MIN_ROWS = 10
#: A text column is a category when it has at most this many distinct values,
#: each seen on average at least CATEGORY_ROWS_PER_VALUE times ...
MAX_CATEGORIES = 20
CATEGORY_ROWS_PER_VALUE = 10
#: ... and none longer than this (longer texts are prose, not categories).
MAX_CATEGORY_LENGTH = 60
#: A shape pattern is proposed for codes with at least this many distinct values.
MIN_CODES_FOR_PATTERN = 20
#: A reference is declared when every value is a key of the other source and the
#: column has this many distinct values or a name that points at that source.
MIN_DISTINCT_FOR_REFERENCE = 20
NEAR_REFERENCE = 0.99
#: Key search: columns tried for compound keys of two and three columns.
KEY_PAIR_COLUMNS = 12
KEY_TRIPLE_COLUMNS = 8
#: Integers longer than this are kept as text (identifiers; SQLite's integer is 64 bits).
MAX_INTEGER_DIGITS = 18
#: Distinct values checked first: most columns fail a type on the first few.
_SAMPLE = 200

# re.ASCII: \d is [0-9], as for SQL's checks ("٣" is a digit to Python, not to SQLite).
_DIGITS = re.compile(r"-?\d+", re.ASCII)
_INTEGER = re.compile(rf"-?(?:0|[1-9]\d{{0,{MAX_INTEGER_DIGITS - 1}}})", re.ASCII)
_DECIMAL = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
_NUMBERISH = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", re.ASCII)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_BOOLEAN_WORDS = {"true": True, "false": False, "yes": True, "no": False}
_BOOLEAN_LETTERS = {"t": True, "f": False, "y": True, "n": False}
_BOOLEAN_DIGITS = {"1": True, "0": False}
_PARTNERS = {"true": "false", "yes": "no", "t": "f", "y": "n", "1": "0"}
_MONEY_LAST_WORDS = {"price", "cost", "amount", "total", "subtotal"}
_FLAG_LAST_WORDS = {"flag", "active", "enabled", "deleted", "valid"}
_ID_WORDS = {"id", "key", "code", "uuid", "guid", "sku", "iata", "icao", "isbn"}

#: ISO forms the declaration's ``format: iso`` accepts (docs/sources.md).
_ISO_DATE = "%Y-%m-%d"
_ISO_FORMS = {(len("2018-09-01T12:55:00"), sep): f"%Y-%m-%d{sep}%H:%M:%S" for sep in "T "} | {
    (len("2018-09-01T12:55"), sep): f"%Y-%m-%d{sep}%H:%M" for sep in "T "
}
_ISO_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?", re.ASCII
)
#: Fixed-width formats tried for other dates (ISO's own order is "iso").
_DATE_ORDERS = ("%Y{s}%m{s}%d", "%d{s}%m{s}%Y", "%m{s}%d{s}%Y")
_TIME_PARTS = ("", " %H:%M", " %H:%M:%S", "T%H:%M", "T%H:%M:%S")


@dataclass
class Profile:
    """What :func:`profile` inferred from one file."""

    noun: str
    path: Path
    rows: int
    #: the declaration, a plain dict in the shape of docs/sources.md
    declaration: dict
    #: what it was unsure of, one sentence each (printed under "unsure")
    notes: list[str] = field(default_factory=list)


@dataclass
class _Column:
    """One column's facts: distinct trimmed values and how often each occurs."""

    header: str
    name: str
    row_codes: np.ndarray  # per row: index into ``values`` (trimmed)
    values: np.ndarray  # distinct trimmed texts (object array)
    counts: np.ndarray  # rows per value
    tokens: list[str] = field(default_factory=list)  # null tokens seen here
    kind: str = "text"
    spec: dict = field(default_factory=dict)

    masks: dict = field(default_factory=dict)

    def _filled(self, nulls: frozenset[str] | set[str]) -> np.ndarray:
        """Per distinct value: neither blank nor a null token (cached per set of nulls)."""
        key = frozenset(nulls)
        if key not in self.masks:
            if "tokens" not in self.masks:  # where NULL_TOKENS are: looked up once
                self.masks["tokens"] = np.flatnonzero(
                    pd.Index(self.values).isin(sorted(NULL_TOKENS))
                )
            blank = self.values == ""
            if key <= NULL_TOKENS:
                at = self.masks["tokens"]
                blank[at] = [v in key for v in self.values[at]]
            elif key:
                blank |= pd.Index(self.values).isin(sorted(key))
            self.masks[key] = ~blank
        return self.masks[key]

    def present(self, nulls: frozenset[str] | set[str]) -> np.ndarray:
        """Distinct values that are not blank and not a null token."""
        return self.values[self._filled(nulls)]

    def blanks(self, nulls: frozenset[str] | set[str]) -> int:
        """Rows that are blank or a null token."""
        return int(self.counts[~self._filled(nulls)].sum())


# ------------------------------------------------------------------ names


def noun_for(path: Path, name: str | None = None) -> str:
    """The source's noun: ``name`` if given (checked), else from the file name
    (``raw_`` stripped, snake_case)."""
    if name is not None:
        if not _NOUN.fullmatch(name):
            raise BadInput(
                f"--name {name!r} is not a noun: lower-case letters, digits and _, "
                f"starting with a letter, at most {MAX_NOUN} characters"
            )
        return name
    stem = Path(path).name
    stem = stem[: -len(".csv")] if stem.lower().endswith(".csv") else Path(stem).stem
    noun = clean_name(stem)
    noun = noun.removeprefix("raw_").lstrip("_")[:MAX_NOUN].rstrip("_")
    if not _NOUN.fullmatch(noun):
        raise BadInput(f"cannot make a noun of the file name {Path(path).name!r}: pass --name")
    return noun


#: Letters that Unicode does not decompose into a base letter and an accent.
_NOT_DECOMPOSED = {"ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O"}
_NOT_DECOMPOSED |= {"ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ð": "d", "þ": "th", "Þ": "Th"}


def clean_name(header: str) -> str:
    """A safe snake_case identifier for a header (before keyword and duplicate checks).

    ``Culmen Length (mm)`` -> ``culmen_length_mm``, ``studyName`` -> ``study_name``,
    ``Delta 15 N (o/oo)`` -> ``delta_15_n_o_oo``, ``% fat`` -> ``pct_fat``.
    """
    text = "".join(_NOT_DECOMPOSED.get(ch, ch) for ch in header)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = text.replace("%", " pct ").replace("#", " num ").replace("&", " and ")
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text)  # camelCase
    text = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", " ", text)  # HTTPStatus
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    if text and text[0].isdigit():
        text = f"col_{text}"
    return text


def clean_names(headers: list[str], keep: dict[str, str] | None = None) -> list[str]:
    """Unique clean names for ``headers`` (file order); ``keep`` maps headers to
    names that must stay (an update keeps the names people already use)."""
    keep = keep or {}
    taken = {name for header, name in keep.items() if header in headers}
    names = []
    for position, header in enumerate(headers, start=1):
        if header in keep:
            names.append(keep[header])
            continue
        base = clean_name(header)[:MAX_NAME].rstrip("_") or f"column_{position}"
        if base in RESERVED_NAMES or base.startswith("dq_"):
            base = f"{base}_"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base[: MAX_NAME - len(str(n)) - 1]}_{n}"
        taken.add(name)
        names.append(name)
    return names


# ------------------------------------------------------------------ file shape


def _encodings(path: Path) -> tuple[str, ...]:
    """The encodings to try, in order: UTF-8 (``utf-8-sig`` with a byte-order
    mark), cp1252, and latin-1, which decodes any byte."""
    with open(path, "rb") as fh:
        utf8 = "utf-8-sig" if fh.read(3) == codecs.BOM_UTF8 else "utf-8"
    return utf8, "cp1252", "latin-1"


def sniff_delimiter(text: str) -> tuple[str, bool]:
    """The delimiter among ``,;<tab>|`` that splits the first lines into the same
    number (> 1) of fields, quote-aware (csv module); returns it and whether the
    choice was clear."""
    lines = text.splitlines(keepends=True)
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # a cut-off last line
    sample = "".join(lines[:200])
    best: tuple[tuple, str] | None = None
    for delimiter in DELIMITERS:
        counts = [len(r) for r in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter)]
        counts = [c for c in counts if c]  # blank lines
        if not counts:
            continue
        width, agree = Counter(counts).most_common(1)[0]
        score = (width > 1, agree == len(counts), agree / len(counts), width)
        if best is None or score > best[0]:
            best = (score, delimiter)
    if best is None or not best[0][0]:
        return ",", False
    return best[1], bool(best[0][1])


def _read(path: Path, encoding: str, delimiter: str) -> tuple[list[str], pd.DataFrame]:
    """The header (exactly as in the file) and every cell as raw text.

    Every record must be as wide as the header (the file contract preflight
    checks): pandas refuses a longer one; a shorter one it fills with empty
    cells, so the file is counted with the csv module when the last column
    has an empty cell (the only case a short record can hide in)."""
    with open(path, newline="", encoding=encoding) as fh:
        header = next(csv.reader(fh, delimiter=delimiter), None)
    if header is None:
        raise BadInput(f"{path} is empty: expected a header and data rows")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise BadInput(f"{path}: the header repeats {', '.join(map(repr, repeated))}: rename")
    try:
        frame = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            sep=delimiter,
            encoding=encoding,
            index_col=False,
            quotechar='"',
        )
    except pd.errors.ParserError as exc:  # "Expected 3 fields in line 4, saw 4"
        raise BadInput(f"{path}: {exc}; fix the file first (a run would stop there)") from None
    if frame.empty:
        raise BadInput(f"{path} has a header but no data rows: nothing to profile")
    frame.columns = header
    if (frame.iloc[:, -1] == "").any():
        _check_widths(path, encoding, delimiter, len(header))
    return header, frame


def _check_widths(path: Path, encoding: str, delimiter: str, width: int) -> None:
    with open(path, newline="", encoding=encoding) as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        for row in reader:  # blank lines are skipped, as dbt and preflight do
            if row and len(row) != width:
                raise BadInput(
                    f"{path}:{reader.line_num}: {len(row)} fields where the header has"
                    f" {width}: fix the file first (a run would stop at this line)"
                )


def _column(header: str, name: str, series: pd.Series) -> _Column:
    codes, uniques = pd.factorize(series, sort=False)
    counts = np.bincount(codes, minlength=len(uniques))
    values = np.asarray(uniques, dtype=object)
    joined = "\n" + "\n".join(values) + "\n"  # one C-speed scan for edge spaces
    if "\n " in joined or " \n" in joined:  # " a" and "a" are one value (SQL's trim())
        trimmed = np.array([v.strip(" ") for v in values], dtype=object)
        to_trimmed, values = pd.factorize(trimmed, sort=False)
        counts = np.bincount(to_trimmed, weights=counts, minlength=len(values)).astype(np.int64)
        codes = to_trimmed[codes]
        values = np.asarray(values, dtype=object)
    return _Column(header, name, codes, values, counts)


# ------------------------------------------------------------------ types


def _all_match(regex: re.Pattern, values: np.ndarray) -> bool:
    head = values[:_SAMPLE]
    return all(map(regex.fullmatch, head)) and all(map(regex.fullmatch, values[_SAMPLE:]))


def _parses(values: np.ndarray, fmt: str) -> bool:
    parsed = pd.to_datetime(pd.Series(values, dtype=object), format=fmt, errors="coerce")
    return bool(parsed.notna().all())


def _format_regex(fmt: str) -> re.Pattern:
    parts = re.split(r"(%[YmdHMS])", fmt)
    width = {"%Y": r"\d{4}"}
    return re.compile(
        "".join(width.get(p, r"\d{2}") if p.startswith("%") else re.escape(p) for p in parts if p),
        re.ASCII,
    )


def _words(name: str) -> list[str]:
    return name.split("_")


def _iso_canonical(text: str) -> str:
    """An ISO date or timestamp as "YYYY-MM-DD HH:MM:SS" (fractions dropped)."""
    time = text[11:19] or "00:00:00"
    return f"{text[:10]} {time}:00" if len(time) == 5 else f"{text[:10]} {time}"


def _infer_dates(values: np.ndarray, name: str, notes: list[str]) -> tuple[str, str] | None:
    """``(type, format)`` when every value is a valid date or timestamp of one
    form: ISO, or one fixed-width pattern of ``%Y %m %d %H %M %S``."""
    head = values[:_SAMPLE]
    if not all(8 <= len(v) <= 29 and v[:1].isdigit() for v in head):
        return None
    if _all_match(_format_regex(_ISO_DATE), values):
        return ("date", "iso") if _parses(values, _ISO_DATE) else None
    first = _ISO_FORMS.get((len(values[0]), values[0][10:11]))
    if first and _all_match(_format_regex(first), values):  # one form throughout (fast)
        return ("timestamp", "iso") if _parses(values, first) else None
    if _all_match(_ISO_TIMESTAMP, values):
        # "T" or " ", with or without seconds and fractions, dates alone: as a run
        # reads them, each the same instant as "YYYY-MM-DD HH:MM:SS".
        full = np.array([_iso_canonical(v) for v in values], dtype=object)
        return ("timestamp", "iso") if _parses(full, "%Y-%m-%d %H:%M:%S") else None
    orders = list(_DATE_ORDERS)
    if "date" in _words(name) or "day" in _words(name):
        orders.append("%Y%m%d")  # 20120101 is a date only when the header says so
    fits = []
    for order in orders:
        for sep in "/-.":
            for time in _TIME_PARTS:
                fmt = order.format(s=sep) + time
                if fmt in fits or fmt.startswith(_ISO_DATE):
                    continue  # ISO forms are "iso"
                regex = _format_regex(fmt)
                matches = all(map(regex.fullmatch, head)) and _all_match(regex, values)
                if matches and _parses(values, fmt):
                    fits.append(fmt)
    if len(fits) > 1:  # 01/02/2020: day or month first?
        notes.append(
            f"{name}: dates that fit {' and '.join(fits)} alike: kept as text; add the format"
        )
    if len(fits) != 1:
        return None
    fmt = fits[0]
    return ("timestamp" if "%H" in fmt else "date"), fmt


def _infer_boolean(values: np.ndarray, name: str) -> tuple[list[str], list[str]] | None:
    if not 0 < len(values) <= 12:  # a few words in any case: True, TRUE, true, ...
        return None
    lowered = {v.lower() for v in values}
    if len(lowered) > 4:
        return None
    words = {**_BOOLEAN_WORDS, **_BOOLEAN_LETTERS}
    flag = name.startswith(("is_", "has_", "was_", "can_")) or _words(name)[-1] in _FLAG_LAST_WORDS
    if flag:
        words |= _BOOLEAN_DIGITS
    if not lowered <= words.keys():
        return None
    sides = {words[w] for w in lowered}
    if len(sides) < 2 and not lowered & _BOOLEAN_WORDS.keys():
        return None  # one letter or digit alone ("N", "1") is a code, not a flag
    true = sorted(w for w in lowered if words[w])
    false = sorted(w for w in lowered if not words[w])
    # A side never seen gets its partner's word: [true] without [false] is no declaration.
    if not false:
        false = [_PARTNERS[true[0]]]
    if not true:
        true = [next(t for t, f in _PARTNERS.items() if f == false[0])]
    return true, false


def _shape(value: str) -> str:
    """``JAF-001`` -> ``A-9``: runs of upper-case letters, lower-case letters and
    digits, other characters as themselves."""
    out = re.sub(r"[A-Z]+", "A", value)
    out = re.sub(r"[a-z]+", "a", out)
    return re.sub(r"[0-9]+", "9", out)


def _infer_pattern(values: np.ndarray) -> str | None:
    """A full-match pattern for clearly structured codes (all one shape), else None."""
    if len(values) < MIN_CODES_FOR_PATTERN:
        return None
    if _all_match(_UUID, values):
        return _UUID.pattern
    shapes = {_shape(v) for v in values[:_SAMPLE]}
    if len(shapes) != 1:
        return None
    [shape] = shapes
    classes = {"A": "[A-Z]+", "a": "[a-z]+", "9": "[0-9]+"}
    runs = sum(ch in classes for ch in shape)
    if "9" not in shape or runs < 2 or len(shape) > 12 or " " in shape:
        # Codes have digits and no spaces: a shape of letters alone ("Aa" for
        # "Greenville") would reject the next "McDonald", one of words ("Item 7 of
        # lot 3") the next phrasing; a single run ("123") says nothing a type would not.
        return None
    if not all(ch.isascii() and ch.isprintable() for ch in shape):
        return None
    special = set(".^$*+?{}[]\\|()")  # re.escape also escapes "-", which needs none here
    pattern = "".join(classes.get(ch) or (f"\\{ch}" if ch in special else ch) for ch in shape)
    return pattern if _all_match(re.compile(pattern), values) else None


def _no_negative(values: np.ndarray) -> bool:
    """No value of a number column starts with "-" (one C-speed scan; "-0" counts
    as negative, which only leaves out a ``min: 0``)."""
    return "\n-" not in "\n" + "\n".join(values)


def _infer(col: _Column, values: np.ndarray) -> tuple[str, dict, list[str]]:
    """The column's type and type-specific rules from its distinct present values."""
    notes: list[str] = []
    h, name = col.header, col.name
    if not len(values):
        return "text", {}, [f"{h!r} is always blank: declared as text"]
    boolean = _infer_boolean(values, name)
    if boolean:
        spec = {"type": "boolean", "true_values": boolean[0], "false_values": boolean[1]}
        return "boolean", spec, notes
    if _all_match(_INTEGER, values):
        spec: dict = {"type": "integer"}
        if _words(name)[-1] in _MONEY_LAST_WORDS or name.endswith(("_cents", "tax_paid")):
            spec = {"type": "money", "unit": "cents"}
            notes.append(
                f"{h!r} is money in cents (its name says money, every value is whole);"
                " if the values are whole currency units, write `unit: units`"
            )
        if _no_negative(values):
            spec["min"] = 0
        return spec["type"], spec, notes
    if _all_match(_DIGITS, values):
        notes.append(f"{h!r} holds digits with leading zeros or too many digits: kept as text")
        return "text", {}, notes
    if _all_match(_DECIMAL, values):
        spec = {"type": "decimal"}
        if _no_negative(values):
            spec["min"] = 0
        return "decimal", spec, notes
    dates = _infer_dates(values, name, notes)
    if dates:
        kind, fmt = dates
        return kind, ({"type": kind} if fmt == "iso" else {"type": kind, "format": fmt}), notes
    if _all_match(_NUMBERISH, values):
        notes.append(
            f"{h!r} looks numeric but has forms a run does not read as numbers"
            " (thousands separators, exponents, a leading + or .): kept as text"
        )
    return "text", {}, notes


# ------------------------------------------------------------------ keys


def _id_like(name: str) -> bool:
    words = _words(name)
    return words[-1] in _ID_WORDS or name.endswith("id") or words[0] in _ID_WORDS


def _key_candidates(cols: list[_Column], nulls: set[str]) -> list[_Column]:
    """Columns a key may be made of: never blank, more than one value, not a
    measurement (decimal, money) nor a flag; id-like names first."""
    eligible = [
        c
        for c in cols
        if c.kind in ("text", "integer", "date", "timestamp")
        and c.blanks(nulls) == 0
        and len(c.values) > 1
    ]
    return sorted(eligible, key=lambda c: (not _id_like(c.name), " " in "".join(c.values[:50])))


def _infer_key(cols: list[_Column], rows: int, nulls: set[str]) -> list[_Column] | None:
    candidates = _key_candidates(cols, nulls)
    for c in candidates:
        if len(c.values) == rows:
            return [c]
    for size, limit in ((2, KEY_PAIR_COLUMNS), (3, KEY_TRIPLE_COLUMNS)):
        pool = candidates[:limit]
        for combo in _combinations(pool, size):
            if math.prod(len(c.values) for c in combo) < rows:
                continue
            if _unique_rows(combo, rows):
                return sorted(combo, key=cols.index)
    return None


def _combinations(pool: list[_Column], size: int):
    from itertools import combinations

    return combinations(pool, size)


def _unique_rows(combo: tuple[_Column, ...], rows: int) -> bool:
    codes = combo[0].row_codes.astype(np.int64)
    for c in combo[1:]:
        codes = codes * len(c.values) + c.row_codes
        codes, _ = pd.factorize(codes)  # keep the numbers small
    return len(np.unique(codes)) == rows


# ------------------------------------------------------------------ references


def _sources(seeds_dir: Path, exclude: str) -> list[tuple[str, str, str, set[str]]]:
    """``(noun, key header, key type, key values)`` of every existing source with a
    one-column key, read from its declaration and its raw CSV."""
    found = []
    for decl_path in sorted(Path(seeds_dir).glob("*.yml")):
        noun = decl_path.stem
        if noun.startswith("_") or noun == exclude:
            continue
        csv_path = decl_path.with_name(f"raw_{noun}.csv")
        try:
            decl = yaml.safe_load(decl_path.read_text(encoding="utf-8"))
            key = decl.get("key") if isinstance(decl, dict) else None
            if not isinstance(key, str) or not csv_path.exists():
                continue
            spec = (decl.get("columns") or {}).get(key) or {}
            file = decl.get("file") or {}
            frame = pd.read_csv(
                csv_path,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                usecols=[key],
                sep=file.get("delimiter", ","),
                encoding=file.get("encoding", "utf-8"),
            )
        except (OSError, ValueError, yaml.YAMLError, AttributeError, LookupError):
            continue  # not a declaration this command can read: no reference to it
        nulls = set(file.get("nulls") or [])
        keys = {v.strip(" ") for v in frame[key]} - nulls - {""}
        found.append((noun, key, spec.get("type", "text"), keys))
    return found


def _points_at(name: str, noun: str, key_name: str) -> bool:
    singular = noun[:-1] if noun.endswith("s") else noun
    words = set(_words(name))
    return bool({noun, singular} & words) or name == key_name


# ------------------------------------------------------------------ profile


def profile(
    path: Path,
    name: str | None = None,
    seeds_dir: Path | None = None,
    previous: dict | None = None,
) -> Profile:
    """Infer the declaration of the CSV at ``path`` (see the module docstring).

    ``seeds_dir`` holds the existing sources that references are looked up in
    (default: the configured seeds folder). With ``previous`` (the declaration
    in force, for ``--update``) the hand-written parts are kept: descriptions,
    rules, ``max_rejected_share``, the clean names and references of columns
    that still exist, and the key while it still holds.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path} is not a file")
    if seeds_dir is None:
        from dq import config

        seeds_dir = config.load().seeds_dir
    noun = noun_for(path, name)
    notes: list[str] = []
    previous = previous or {}
    old_columns = previous.get("columns") or {}
    if not isinstance(old_columns, dict) or not all(
        isinstance(v, dict | None) for v in old_columns.values()
    ):
        raise BadInput("the declaration in force has no `columns` mapping to update")

    for encoding in _encodings(path):
        try:  # the first encoding that decodes every byte (the field count pass reads all)
            with open(path, encoding=encoding, newline="") as fh:
                delimiter, clear = sniff_delimiter(fh.read(SAMPLE_BYTES))
            header, frame = _read(path, encoding, delimiter)
            break
        except UnicodeDecodeError:
            continue
    if encoding not in ("utf-8", "utf-8-sig"):
        notes.append(f"the file is not UTF-8; read as {encoding} (a run re-encodes its copy)")
    if not clear:
        notes.append(f"the delimiter is a guess ({delimiter!r}): the first lines do not agree")
    rows = len(frame)

    keep = {h: (s or {}).get("name", h) for h, s in old_columns.items() if h in header}
    names = clean_names(header, keep)
    cols = [
        _column(h, n, frame.iloc[:, i]) for i, (h, n) in enumerate(zip(header, names, strict=True))
    ]
    del frame

    # Pass 1: a column's type with every null-looking token set aside; the tokens
    # of the typed columns become the file's nulls.
    nulls: set[str] = set()
    first: dict[str, tuple] = {}
    for col in cols:
        col.tokens = list(col.values[~col._filled(NULL_TOKENS) & (col.values != "")])
        first[col.header] = _infer(col, col.present(NULL_TOKENS))
        if first[col.header][0] != "text":
            nulls.update(col.tokens)
    # Pass 2: every column with the file's nulls blank. A typed column has all its
    # tokens among the nulls, so it has the same values as in pass 1.
    for col in cols:
        present = col.present(nulls)
        typed = first[col.header][0] != "text"
        col.kind, col.spec, found = first[col.header] if typed else _infer(col, present)
        notes.extend(found)
        blanks = col.blanks(nulls)
        if col.kind == "text":
            _text_rules(col, present, rows, blanks, notes)
        if blanks == 0 and rows >= MIN_ROWS:
            col.spec["required"] = True
        leftover = sorted(set(col.tokens) - nulls)
        if col.kind == "text" and leftover:
            notes.append(
                f"{col.header!r} holds {', '.join(map(repr, leftover))}, kept as values"
                " (no typed column uses them as nulls); add them to file.nulls if they mean"
                " no value"
            )
    if rows < MIN_ROWS:
        notes.append(f"only {rows} rows: no column is declared required, no value set is closed")

    key = _keep_key(previous, cols, rows, nulls, notes) or _infer_key(cols, rows, nulls)
    _reference(cols, noun, seeds_dir, nulls, old_columns, notes)

    declaration: dict = {}
    for top in ("description",):
        if previous.get(top):
            declaration[top] = previous[top]
    file_spec: dict = {"encoding": encoding, "delimiter": delimiter}
    if nulls:
        file_spec["nulls"] = sorted(nulls)
    declaration["file"] = file_spec
    if key:
        headers = [c.header for c in key]
        declaration["key"] = headers[0] if len(headers) == 1 else headers
        for c in key:
            c.spec.pop("required", None)  # key columns are always required
        if not previous.get("key") or previous.get("key") != declaration["key"]:
            what = "unique" if len(key) == 1 else "together unique"
            notes.append(
                f"key {declaration['key']!r}: {what} and never blank in all {rows} rows"
                " (a repeated key is quarantined); check that it is the row's identity"
            )
    else:
        notes.append("no key: no column, nor two or three together, is unique and never blank")
        duplicated = bool(pd.DataFrame({c.header: c.row_codes for c in cols}).duplicated().any())
        if duplicated:
            declaration["duplicates"] = "keep_all"
            notes.append("the file has identical rows: `duplicates: keep_all` keeps them all")
    if "max_rejected_share" in previous:
        declaration["max_rejected_share"] = previous["max_rejected_share"]
    else:
        declaration["max_rejected_share"] = MAX_REJECTED_SHARE
        notes.append(
            f"max_rejected_share: {MAX_REJECTED_SHARE} (the default of dq add-source): a run"
            f" stops when more than {MAX_REJECTED_SHARE:.0%} of the rows are quarantined"
        )
    declaration["columns"] = {}
    for col in cols:
        spec = dict(col.spec)
        old = old_columns.get(col.header) or {}
        if "description" in old:
            spec["description"] = old["description"]
        indicators = old.get("indicators") or {}
        if indicators and all(str(v) in spec.get("values", []) for v in indicators.values()):
            spec["indicators"] = indicators
        elif indicators:
            notes.append(f"{col.header!r}: its indicators need `values` with their values: dropped")
        if col.name != col.header:
            spec = {"name": col.name, **spec}
        declaration["columns"][col.header] = _ordered(spec)
    if previous.get("rules"):
        declaration["rules"] = previous["rules"]
    if previous:
        _note_changes(previous, declaration, notes)
    positive = [c.header for c in cols if c.spec.get("min") == 0]
    if positive:
        notes.append(
            f"min: 0 where no value was negative ({', '.join(map(repr, positive[:5]))}"
            f"{', ...' if len(positive) > 5 else ''}): a negative is quarantined"
        )
    numbers = [c.header for c in cols if c.kind in ("integer", "decimal", "money")]
    if numbers:
        notes.append(
            "no upper bounds: `max` is never taken from the largest value seen"
            f" (add one where a limit is known, e.g. for {numbers[0]!r})"
        )
    return Profile(noun, path, rows, declaration, notes)


def _text_rules(
    col: _Column, present: np.ndarray, rows: int, blanks: int, notes: list[str]
) -> None:
    """A closed value set for categories, a pattern for structured codes."""
    n = len(present)
    seen = rows - blanks  # rows that hold a value
    if (
        0 < n <= MAX_CATEGORIES
        and rows >= MIN_ROWS
        and seen >= CATEGORY_ROWS_PER_VALUE * n
        and max(len(v) for v in present) <= MAX_CATEGORY_LENGTH
    ):
        col.spec["values"] = sorted(present)
        notes.append(
            f"{col.header!r}: a closed set of {n} value{'s' if n > 1 else ''} seen in"
            f" {seen} rows; a new value is quarantined (remove `values` if the set is open)"
        )
        return
    pattern = _infer_pattern(present)
    if pattern:
        col.spec["pattern"] = pattern
        notes.append(f"{col.header!r}: every one of {n} values has the shape {pattern!r}")


def _keep_key(previous, cols, rows, nulls, notes) -> list[_Column] | None:
    """The previous key, while it still holds in the new file."""
    old = previous.get("key")
    if not old:
        return None
    headers = [old] if isinstance(old, str) else list(old)
    by_header = {c.header: c for c in cols}
    if not all(h in by_header for h in headers):
        notes.append(f"the key {old!r} has columns the file no longer has")
        return None
    combo = tuple(by_header[h] for h in headers)
    if all(c.blanks(nulls) == 0 for c in combo) and _unique_rows(combo, rows):
        return list(combo)
    notes.append(f"the key {old!r} is no longer unique and never blank in the new file")
    return None


def _reference(cols, noun, seeds_dir, nulls, old_columns, notes) -> None:
    """``references: <noun>`` where every value is a key of an existing source."""
    typed = [c for c in cols if c.kind in ("text", "integer")]
    if not typed:
        return
    for other, key, key_type, keys in _sources(seeds_dir, exclude=noun):
        key_name, known = clean_name(key), pd.Index(sorted(keys))
        for col in typed:
            if col.kind != key_type or "references" in col.spec:
                continue
            present = col.present(nulls)
            if not len(present):
                continue
            found = int(pd.Index(present).isin(known).sum())
            share = found / len(present)
            pointed = (old_columns.get(col.header) or {}).get("references") == other
            if share == 1 and (
                pointed
                or len(present) >= MIN_DISTINCT_FOR_REFERENCE
                or _points_at(col.name, other, key_name)
            ):
                col.spec["references"] = other
                col.spec.pop("values", None)  # the other source's keys are the set
                col.spec.pop("pattern", None)
                notes.append(
                    f"{col.header!r} references {other} (every one of its {len(present)}"
                    f" values is a {key!r} of {other}); rows whose {other} are quarantined"
                    " will be quarantined too"
                )
            elif share == 1:
                notes.append(
                    f"{col.header!r}: all {len(present)} values are {key!r}s of {other},"
                    " too few to be sure; not declared (add `references: "
                    f"{other}` if it is one)"
                )
            elif share >= NEAR_REFERENCE:
                notes.append(
                    f"{col.header!r}: {share:.1%} of its values are {key!r}s of {other};"
                    " not declared as a reference (the others would be quarantined)"
                )
            elif pointed:
                notes.append(
                    f"{col.header!r} referenced {other}, but {len(present) - found} of its"
                    " values are not keys there: the reference is dropped"
                )


def _note_changes(previous: dict, declaration: dict, notes: list[str]) -> None:
    old, new = previous.get("columns") or {}, declaration["columns"]
    gone = [h for h in old if h not in new]
    added = [h for h in new if h not in old]
    if gone:
        notes.append(f"columns gone from the file: {', '.join(map(repr, gone))}")
    if added:
        notes.append(f"new columns: {', '.join(map(repr, added))}")
    gone_names = {(old[h] or {}).get("name", h) for h in gone}
    for rule in declaration.get("rules") or []:
        text = str((rule or {}).get("reject_if", ""))
        used = sorted(n for n in gone_names if re.search(rf"\b{re.escape(n)}\b", text))
        if used:
            notes.append(f"rule {rule.get('name')!r} uses {', '.join(used)}, which is gone")


_SPEC_ORDER = (
    "name", "type", "unit", "format", "required", "values", "lowercase", "pattern",
    "min", "max", "true_values", "false_values", "references", "indicators", "description",
)  # fmt: skip


def _ordered(spec: dict) -> dict:
    rank = {k: i for i, k in enumerate(_SPEC_ORDER)}
    return dict(sorted(spec.items(), key=lambda kv: rank.get(kv[0], len(rank))))


# ------------------------------------------------------------------ rendering

_TOP_ORDER = ("description", "file", "key", "duplicates", "max_rejected_share", "columns", "rules")
LINE_WIDTH = 100


def _unsafe_text(value) -> bool:
    """Whether a value holds characters a reader should see escaped (controls,
    bidirectional overrides, unassigned code points)."""
    if isinstance(value, str):
        return any(unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs", "Cn") for ch in value)
    if isinstance(value, dict):
        return any(_unsafe_text(k) or _unsafe_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(map(_unsafe_text, value))
    return False


def _flow(key, value) -> str:
    """``key: value`` on one line, both dumped by yaml.safe_dump."""
    text = yaml.safe_dump(
        {key: value},
        default_flow_style=True,
        sort_keys=False,
        width=math.inf,
        allow_unicode=not _unsafe_text([key, value]),
    ).strip()
    return text[1:-1]  # the outer { } of the one-entry mapping


def _block(key, value, indent: str = "") -> str:
    """``key:`` and its value in block style (lists one item a line), no line folding."""
    text = yaml.safe_dump(
        {key: value},
        default_flow_style=False,
        sort_keys=False,
        width=math.inf,
        allow_unicode=not _unsafe_text([key, value]),
    )
    return "".join(indent + line for line in text.splitlines(keepends=True))


def render(declaration: dict, *, noun: str | None = None, rows: int | None = None) -> str:
    """The declaration as YAML: a header comment, top-level settings, then one
    flow-style line per column where it fits in LINE_WIDTH characters.
    ``yaml.safe_load(render(d)) == d``."""
    about = f"seeds/{noun}.yml declares seeds/raw_{noun}.csv" if noun else "A source declaration"
    lines = [f"# {about} (format: docs/sources.md)."]
    if rows is not None:
        lines.append(f"# Proposed by `dq add-source` from {rows} rows: every one of them passes.")
    lines += [
        "# Review the notes it printed (value sets, key, money units), then edit freely:",
        "# keys are the headers as in the file, `name` the clean column name.",
    ]
    if not declaration.get("description"):
        lines.append("# description: what one row is (shown in dbt docs and Data Docs)")
    keys = [k for k in _TOP_ORDER if k in declaration]
    keys += [k for k in declaration if k not in _TOP_ORDER]
    for key in keys:
        value = declaration[key]
        if key == "columns":
            lines.append("columns:" if value else "columns: {}")
            lines += _render_columns(value or {})
            continue
        line = _flow(key, value)
        if len(line) <= LINE_WIDTH and "\n" not in line and key not in ("rules", "description"):
            lines.append(line)
        else:
            lines.append(_block(key, value).rstrip("\n"))
    return "\n".join(lines) + "\n"


def _render_columns(columns: dict) -> list[str]:
    flows = {h: _flow(h, spec or {}) for h, spec in columns.items()}
    # Align the specs after the longest header that fits (within reason).
    heads = {h: _flow(h, "x")[: -len(" x")] for h in columns}
    if "" in columns:  # an unnamed column (a row index): '' rather than PyYAML's "? ''"
        heads[""], flows[""] = "'':", "'': " + _flow("k", columns[""] or {})[len("k: ") :]
    pad = min(max((len(k) for k in heads.values() if k[:1] != "?"), default=0), 28)
    out = []
    for header, spec in columns.items():
        head = heads[header]
        line = "  " + head.ljust(pad) + flows[header][len(head) :]
        if head.startswith("?"):  # a key PyYAML writes as "? key" ('' or over 128 characters)
            out.append(_block(header, spec or {}, "  ").rstrip("\n"))
        elif len(line) <= LINE_WIDTH:
            out.append(line)
        else:  # one spec entry a line, long lists one item a line
            out.append("  " + head)
            for k, v in (spec or {}).items():
                item = _flow(k, v)
                out.append(
                    "    " + item if len(item) <= LINE_WIDTH - 4 else _block(k, v, "    ").rstrip()
                )
    return out


def describe(spec: dict) -> str:
    """One line of what a column spec says, for the command's summary."""
    spec = spec or {}
    kind = spec.get("type", "text")
    if kind == "money":
        kind += f" in {spec.get('unit', 'cents')}"
    if spec.get("format"):
        kind += f" ({spec['format']})"
    parts = [kind]
    if spec.get("required"):
        parts.append("required")
    if "values" in spec:
        parts.append(f"{len(spec['values'])} value{'s' if len(spec['values']) > 1 else ''}")
    if "pattern" in spec:
        parts.append("pattern")
    if "min" in spec:
        parts.append(f">= {spec['min']}")
    if "max" in spec:
        parts.append(f"<= {spec['max']}")
    if "true_values" in spec:
        parts.append("/".join(spec["true_values"] + spec.get("false_values", [])))
    if "references" in spec:
        parts.append(f"-> {spec['references']}")
    return ", ".join(parts)


def printable(text: str) -> str:
    """CSV text made safe for a terminal: control and format characters escaped."""
    return "".join(
        ch if unicodedata.category(ch) not in ("Cc", "Cf", "Co", "Cs", "Cn") else repr(ch)[1:-1]
        for ch in str(text)
    )


def diff(old_text: str, new_text: str, label: str) -> str:
    """A unified diff of the declaration in force and the proposed one."""
    return "".join(
        difflib.unified_diff(
            old_text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=f"{label} (in force)",
            tofile=f"{label} (proposed)",
        )
    )
