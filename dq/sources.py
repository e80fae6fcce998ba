"""Source declarations: ``seeds/<noun>.yml`` declares ``seeds/raw_<noun>.csv``.

A declaration is the single source of truth of one source (docs/sources.md):
preflight reads its file contract, :mod:`dq.generate` turns it into the dbt
seed config and the check / clean / quarantine models, :mod:`dq.suites` into
the GX suites. :func:`load_sources` reads every declaration in a seeds folder
and reports every problem with its file, line and column
(:class:`~dq.contracts.ContractError`), never a traceback.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dq import monitor_spec
from dq.contracts import ContractError, Problem, _Mapping, _read, _Reader
from dq.monitor_spec import Monitors

#: A noun names files (``<noun>.yml``, ``raw_<noun>.csv``) and tables.
NOUN = re.compile(r"[a-z][a-z0-9_]{0,39}")
#: A clean column name: used unquoted in SQL (custom rules), so plain.
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

TYPES = ("text", "integer", "decimal", "money", "boolean", "date", "timestamp")
NUMERIC = ("integer", "decimal", "money")
TEMPORAL = ("date", "timestamp")
DUPLICATES = ("keep_first", "reject_all", "keep_all")
#: Fixed-width fields a date or timestamp ``format`` may use, and their widths.
FORMAT_FIELDS = {"%Y": 4, "%m": 2, "%d": 2, "%H": 2, "%M": 2, "%S": 2}
_ISO_BOUND = re.compile(r"\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2})?")

#: SQL keywords (SQLite's list, which covers the common PostgreSQL ones) that
#: may not be clean column names: custom rules use clean names unquoted.
SQL_KEYWORDS = frozenset(
    """
    abort action add after all alter always analyze and as asc attach autoincrement before
    begin between by cascade case cast check collate column commit conflict constraint
    create cross current current_date current_time current_timestamp database default
    deferrable deferred delete desc detach distinct do drop each else end escape except
    exclude exclusive exists explain fail filter first following for foreign from full
    generated glob group groups having if ignore immediate in index indexed initially inner
    insert instead intersect into is isnull join key last left like limit match
    materialized natural no not nothing notnull null nulls of offset on or order others
    outer over partition plan pragma preceding primary query raise range recursive
    references regexp reindex release rename replace restrict returning right rollback row
    rows savepoint select set table temp temporary then ties to transaction trigger
    unbounded union unique update using vacuum values view virtual when where window with
    without user analyse array asymmetric both leading localtime localtimestamp only
    placing session_user some symmetric trailing variadic
    """.split()  # noqa: SIM905 (one word list reads better than 180 lines)
)

#: Never a clean name either: SQLite's hidden row id and the columns the check
#: models add (``dq_*`` is reserved for them as a whole).
RESERVED_NAMES = SQL_KEYWORDS | {"rowid", "oid", "_rowid_", "reject_reason", "copy_number"}

DECLARATION_SUFFIX = ".yml"


@dataclass(frozen=True)
class Column:
    """One column of a source: its header in the file and its clean form."""

    header: str
    name: str
    type: str = "text"
    description: str = ""
    required: bool = False
    values: tuple[str, ...] | None = None
    lowercase: bool = False
    pattern: str | None = None
    indicators: tuple[tuple[str, str], ...] = ()
    unit: str | None = None
    min: float | str | None = None
    max: float | str | None = None
    format: str | None = None
    true_values: tuple[str, ...] = ()
    false_values: tuple[str, ...] = ()
    references: str | None = None


@dataclass(frozen=True)
class Rule:
    """A named custom rule: rows for which ``reject_if`` holds are rejected."""

    name: str
    reject_if: str


@dataclass(frozen=True)
class Source:
    """One declared source."""

    noun: str
    path: Path
    columns: tuple[Column, ...]
    description: str = ""
    delimiter: str = ","
    encoding: str = "utf-8"
    nulls: tuple[str, ...] = ()
    key: tuple[str, ...] = ()
    duplicates: str = "keep_first"
    max_rejected_share: float = 0.0
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    monitors: Monitors = field(default_factory=Monitors)

    # One noun per source across files and tables.
    @property
    def csv_name(self) -> str:
        return f"raw_{self.noun}.csv"

    @property
    def raw_table(self) -> str:
        return f"raw_{self.noun}"

    @property
    def checked_table(self) -> str:
        return f"checked_{self.noun}"

    @property
    def clean_table(self) -> str:
        return f"stg_{self.noun}"

    @property
    def rejected_table(self) -> str:
        return f"rejected_{self.noun}"

    @property
    def headers(self) -> tuple[str, ...]:
        """The header of the file, as declared."""
        return tuple(c.header for c in self.columns)

    @property
    def raw_names(self) -> tuple[str, ...]:
        """The raw table's column names: the headers, except that dbt's CSV
        reader (agate) names an empty header by its position ('a', 'b', ...),
        as R and pandas exports have for row names."""
        return tuple(c.header or _letter_name(i) for i, c in enumerate(self.columns))

    def column(self, header: str) -> Column:
        return next(c for c in self.columns if c.header == header)

    @property
    def clean_key(self) -> tuple[str, ...]:
        return tuple(self.column(h).name for h in self.key)

    @property
    def references(self) -> tuple[str, ...]:
        """Nouns this source refers to, in column order, without repeats."""
        return tuple(dict.fromkeys(c.references for c in self.columns if c.references))

    def as_json(self) -> dict:
        """Everything the dbt macros need, as plain JSON data."""
        data = asdict(self)
        data.pop("path")
        data.pop("monitors")  # the monitors read the declaration, not the models
        for column, raw in zip(data["columns"], self.raw_names, strict=True):
            # The raw table's column, and how reasons name the column.
            column.update(raw=raw, label=column["header"] or column["name"])
        data.update(
            raw_table=self.raw_table,
            checked_table=self.checked_table,
            clean_table=self.clean_table,
            rejected_table=self.rejected_table,
        )
        return data


# ------------------------------------------------------------------ reading


def declaration_paths(seeds_dir: Path) -> list[Path]:
    return sorted(Path(seeds_dir).glob(f"*{DECLARATION_SUFFIX}"))


def load_sources(seeds_dir: Path) -> dict[str, Source]:
    """Every declaration in ``seeds_dir``, keyed by noun, sorted by noun.

    Raises :class:`ContractError` listing every problem of every declaration
    (file, line, column), including references to undeclared sources and
    reference cycles.
    """
    seeds_dir = Path(seeds_dir)
    problems: list[Problem] = []
    sources: dict[str, Source] = {}
    positions: dict[str, tuple[_Reader, _Mapping]] = {}
    paths = declaration_paths(seeds_dir)
    if not paths:
        raise ContractError(
            [Problem(seeds_dir, None, None, "no source declarations (<noun>.yml) in this folder")]
        )
    for path in paths:
        reader = _Reader(path)
        try:
            doc = _read(path)
        except ContractError as exc:
            problems += exc.problems
            continue
        noun = path.name.removesuffix(DECLARATION_SUFFIX)
        if not NOUN.fullmatch(noun):
            problems.append(
                Problem(
                    path,
                    None,
                    None,
                    f"{noun!r} is not a source noun: lower-case letters, digits and _,"
                    " starting with a letter, at most 40 characters",
                )
            )
            continue
        if not isinstance(doc, _Mapping):
            problems.append(Problem(path, 1, None, "expected a mapping with 'columns'"))
            continue
        source = _source(reader, noun, path, doc)
        problems += reader.problems
        if source is not None and not reader.problems:
            sources[noun] = source
            positions[noun] = (reader, doc)
    declared = {p.name.removesuffix(DECLARATION_SUFFIX) for p in paths}
    problems += _cross_check(sources, positions, declared)
    if problems:
        raise ContractError(problems)
    return sources


def _text(value) -> bool:
    return isinstance(value, str)


def _source(reader: _Reader, noun: str, path: Path, doc: _Mapping) -> Source | None:
    known = {
        "description", "file", "key", "duplicates", "max_rejected_share", "columns", "rules",
        "monitors",
    }  # fmt: skip
    for extra in sorted(set(doc) - known, key=str):
        reader.at(doc, extra, f"unknown key {extra!r}; expected one of {', '.join(sorted(known))}")
    description = doc.get("description", "") or ""
    if not _text(description):
        reader.at(doc, "description", "description must be text")
    delimiter, encoding, nulls = ",", "utf-8", ()
    if "file" in doc:
        spec = doc["file"]
        if not isinstance(spec, _Mapping):
            reader.at(doc, "file", "file must be a mapping (delimiter, encoding, nulls)")
        else:
            for extra in sorted(set(spec) - {"delimiter", "encoding", "nulls"}, key=str):
                reader.at(spec, extra, f"unknown file setting {extra!r}")
            delimiter = spec.get("delimiter", ",")
            if not _text(delimiter) or len(delimiter) != 1 or delimiter in '"\r\n':
                reader.at(spec, "delimiter", "delimiter must be one character (not a quote)")
            encoding = spec.get("encoding", "utf-8")
            try:
                codecs.lookup(encoding) if _text(encoding) else None
            except LookupError:
                reader.at(spec, "encoding", f"unknown encoding {encoding!r}")
            if not _text(encoding):
                reader.at(spec, "encoding", "encoding must be a codec name such as utf-8")
            nulls = spec.get("nulls", []) or []
            if not isinstance(nulls, list) or not all(_text(n) for n in nulls):
                reader.at(spec, "nulls", "nulls must be a list of texts such as [NA, n/a]")
                nulls = []
            nulls = tuple(n.strip() for n in nulls if n.strip())
    columns = _columns(reader, doc)
    if columns is None:
        return None
    headers = [c.header for c in columns]
    declared_key = key = doc.get("key", [])
    if _text(key):
        key = [key]
    if not isinstance(key, list) or not all(_text(k) and k in headers for k in key):
        reader.at(doc, "key", f"key {declared_key!r} must be a column header or a list of them")
        key = []
    elif len(set(key)) != len(key):
        reader.at(doc, "key", "key lists a column twice")
    duplicates = doc.get("duplicates", "keep_first")
    if duplicates not in DUPLICATES:
        reader.at(doc, "duplicates", f"duplicates must be one of {', '.join(DUPLICATES)}")
    elif duplicates == "keep_all" and key:
        reader.at(doc, "duplicates", "keep_all is for sources without a key")
    share = doc.get("max_rejected_share", 0.0)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        reader.at(doc, "max_rejected_share", "max_rejected_share must be a number in 0..1")
        share = 0.0
    # Key columns are always required.
    columns = [Column(**{**asdict(c), "required": True}) if c.header in key else c for c in columns]
    columns = [
        Column(**{k: tuple(v) if isinstance(v, list) else v for k, v in asdict(c).items()})
        for c in columns
    ]
    rules = _rules(reader, doc)
    monitors = monitor_spec.parse(reader, doc)
    names = [c.name for c in columns] + [n for c in columns for n, _ in c.indicators]
    for name in sorted({n for n in names if names.count(n) > 1}):
        reader.at(doc, "columns", f"clean name {name!r} is used twice")
    return Source(
        noun=noun,
        path=path,
        columns=tuple(columns),
        description=description if _text(description) else "",
        delimiter=delimiter,
        encoding=encoding if _text(encoding) else "utf-8",
        nulls=nulls,
        key=tuple(key),
        duplicates=duplicates,
        max_rejected_share=float(share),
        rules=rules,
        monitors=monitors,
    )


def _columns(reader: _Reader, doc: _Mapping) -> list[Column] | None:
    spec = doc.get("columns")
    if not isinstance(spec, _Mapping) or not spec:
        reader.at(
            doc, "columns" if "columns" in doc else None, "columns must map each header to its spec"
        )
        return None
    columns = []
    for header, column in spec.items():
        if not _text(header):
            reader.at(spec, header, f"column header {header!r} must be text")
            continue
        if '"' in header or not header.isprintable():
            # dbt quotes column names without escaping: such a header cannot load.
            reader.at(
                spec,
                header,
                f"column header {header!r} holds a double quote or a control character;"
                " rename the column in the file",
            )
            continue
        if column is None:
            column = _Mapping()
            column.line, column.column, column.marks = *spec.marks[header], {}
        if not isinstance(column, _Mapping):
            reader.at(spec, header, f"{header}: expected a mapping such as {{type: integer}}")
            continue
        parsed = _column(reader, header, column)
        if parsed is not None:
            columns.append(parsed)
    return columns


_COLUMN_KEYS = {
    "name", "description", "type", "required", "values", "lowercase", "pattern",
    "unit", "min", "max", "format", "true_values", "false_values", "references",
}  # fmt: skip
_FOR_TYPES = {
    "values": ("text",),
    "lowercase": ("text",),
    "pattern": ("text",),
    "unit": ("money",),
    "format": TEMPORAL,
    "true_values": ("boolean",),
    "false_values": ("boolean",),
    "min": NUMERIC + TEMPORAL,
    "max": NUMERIC + TEMPORAL,
}


def _column(reader: _Reader, header: str, spec: _Mapping) -> Column | None:
    bad = len(reader.problems)
    for extra in sorted(set(spec) - _COLUMN_KEYS, key=str):
        reader.at(spec, extra, f"{header}: unknown setting {extra!r}")
    kind = spec.get("type", "text")
    if kind not in TYPES:
        reader.at(spec, "type", f"{header}: type must be one of {', '.join(TYPES)}")
        return None
    for setting, types in _FOR_TYPES.items():
        if setting in spec and kind not in types:
            reader.at(spec, setting, f"{header}: {setting!r} is for {' and '.join(types)} columns")
    default = header if _plain(header) else None
    name = spec.get("name", default)
    if name is None:
        reader.at(spec, None, f"{header}: the header is not a plain name; add name: <snake_case>")
        return None
    if not _text(name) or not _plain(name):
        reader.at(
            spec,
            "name",
            f"{header}: clean name {name!r} must be snake_case and not an SQL keyword"
            " (nor rowid, reject_reason, copy_number or dq_*)",
        )
    for flag in ("required", "lowercase"):
        if flag in spec and not isinstance(spec[flag], bool):
            reader.at(spec, flag, f"{header}: {flag} must be true or false")
    texts = {}
    indicators: dict[str, str] = {}
    values = spec.get("values")
    if isinstance(values, dict):
        # {value: indicator column or null}: the allowed values, each with an
        # optional 0/1 column in the clean table.
        if not values or not all(
            _scalar(v) and (flag is None or _text(flag) and IDENTIFIER.fullmatch(flag))
            for v, flag in values.items()
        ):
            reader.at(spec, "values", f"{header}: values map each value to a clean name or null")
        else:
            indicators = {flag: _as_text(v) for v, flag in values.items() if flag}
            texts["values"] = tuple(_as_text(v) for v in values)
    for setting in ("values", "true_values", "false_values"):
        value = spec.get(setting)
        if value is None or setting in texts or isinstance(value, dict):
            continue
        if not isinstance(value, list) or not value or not all(_scalar(v) for v in value):
            reader.at(spec, setting, f"{header}: {setting} must be a non-empty list of texts")
            continue
        texts[setting] = tuple(_as_text(v) for v in value)
    allowed = texts.get("values")
    if kind == "boolean":
        words = [w.lower() for w in texts.get("true_values", ("true",))]
        words += [w.lower() for w in texts.get("false_values", ("false",))]
        if len(set(words)) != len(words):
            reader.at(spec, None, f"{header}: a word is both true and false")
    pattern = spec.get("pattern")
    if pattern is not None:
        try:
            re.compile(pattern) if _text(pattern) else None
        except re.error as exc:
            reader.at(spec, "pattern", f"{header}: pattern is not a regular expression: {exc}")
        if not _text(pattern):
            reader.at(spec, "pattern", f"{header}: pattern must be text")
    unit = spec.get("unit", "cents" if kind == "money" else None)
    if kind == "money" and unit not in ("cents", "units"):
        reader.at(spec, "unit", f"{header}: unit must be cents or units")
    fmt = spec.get("format", "iso" if kind in TEMPORAL else None)
    if kind in TEMPORAL and fmt != "iso":
        if not _text(fmt) or not _fixed_width(fmt):
            reader.at(
                spec,
                "format",
                f"{header}: format must be iso or fixed-width fields "
                f"({' '.join(FORMAT_FIELDS)}) and literal characters",
            )
        elif kind == "date" and any(f in fmt for f in ("%H", "%M", "%S")):
            reader.at(spec, "format", f"{header}: a date format has no time fields")
        elif "%Y" not in fmt or "%m" not in fmt or "%d" not in fmt:
            reader.at(spec, "format", f"{header}: format needs %Y, %m and %d")
    bounds = {}
    for bound in ("min", "max"):
        if bound not in spec:
            continue
        value = spec[bound]
        if kind in NUMERIC:
            if isinstance(value, bool) or not isinstance(value, int | float):
                reader.at(spec, bound, f"{header}: {bound} must be a number")
                continue
        elif kind in TEMPORAL:
            value = str(value) if not _text(value) else value
            if value != "now" and not _ISO_BOUND.fullmatch(value):
                reader.at(spec, bound, f"{header}: {bound} must be now or YYYY-MM-DD[ HH:MM:SS]")
                continue
        bounds[bound] = value
    references = spec.get("references")
    if references is not None and (not _text(references) or not NOUN.fullmatch(references)):
        reader.at(spec, "references", f"{header}: references must name a source")
    description = spec.get("description", "") or ""
    if not _text(description):
        reader.at(spec, "description", f"{header}: description must be text")
    if len(reader.problems) > bad:
        return None
    return Column(
        header=header,
        name=name,
        type=kind,
        description=description,
        required=bool(spec.get("required", False)),
        values=allowed,
        lowercase=bool(spec.get("lowercase", False)),
        pattern=pattern,
        indicators=tuple((k, _as_text(v)) for k, v in indicators.items()),
        unit=unit,
        min=bounds.get("min"),
        max=bounds.get("max"),
        format=fmt,
        true_values=tuple(w.lower() for w in texts.get("true_values", ("true",)))
        if kind == "boolean"
        else (),
        false_values=tuple(w.lower() for w in texts.get("false_values", ("false",)))
        if kind == "boolean"
        else (),
        references=references,
    )


def _letter_name(index: int) -> str:
    """agate's name for an unnamed column (agate.utils.letter_name)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return letters[index % 26] * (index // 26 + 1)


def _plain(name: str) -> bool:
    """A clean name: snake_case, not a keyword, not a name the models use."""
    return (
        bool(IDENTIFIER.fullmatch(name))
        and name not in RESERVED_NAMES
        and not name.startswith("dq_")
    )


def _scalar(value) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _as_text(value) -> str:
    return value if isinstance(value, str) else str(value)


def _fixed_width(fmt: str) -> bool:
    rest = re.sub("|".join(map(re.escape, FORMAT_FIELDS)), "", fmt)
    return "%" not in rest and all(fmt.count(f) <= 1 for f in FORMAT_FIELDS)


def _rules(reader: _Reader, doc: _Mapping) -> tuple[Rule, ...]:
    spec = doc.get("rules", []) or []
    if not isinstance(spec, list):
        reader.at(doc, "rules", "rules must be a list of {name, reject_if}")
        return ()
    rules = []
    for position, item in enumerate(spec):
        if (
            not isinstance(item, _Mapping)
            or set(item) != {"name", "reject_if"}
            or not all(_text(item[k]) and item[k].strip() for k in item)
        ):
            line, column = spec.marks[position]
            reader.problems.append(
                Problem(reader.path, line, column, "a rule is {name: <reason>, reject_if: <SQL>}")
            )
            continue
        if ";" in item["reject_if"]:
            reader.at(item, "reject_if", "reject_if is one SQL condition (no ';')")
            continue
        rules.append(Rule(name=item["name"].strip(), reject_if=item["reject_if"].strip()))
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        reader.at(doc, "rules", "two rules have the same name")
    return tuple(rules)


def _cross_check(
    sources: dict[str, Source],
    positions: dict[str, tuple[_Reader, _Mapping]],
    declared: set[str],
) -> list[Problem]:
    """References must name a declared source with a one-column key, without cycles."""
    problems: list[Problem] = []
    for noun, source in sources.items():
        reader, doc = positions[noun]
        columns = doc["columns"]
        for column in source.columns:
            target = column.references
            if target is None:
                continue
            spec = columns[column.header]
            if target not in declared:
                reader.at(spec, "references", f"{column.header}: no source {target!r} is declared")
            elif target in sources and len(sources[target].key) != 1:
                reader.at(
                    spec,
                    "references",
                    f"{column.header}: {target} must have a one-column key to be referenced",
                )
        for setting, message in monitor_spec.cross_check(source, sources):
            spec = doc["monitors"]
            reader.at(spec, setting if setting in spec else None, message)
        problems += reader.problems
        reader.problems = []
    # A cycle would make dbt's graph cyclic: checked_a needs stg_b needs checked_b needs stg_a.
    state: dict[str, int] = {}

    def visit(noun: str, trail: list[str]) -> None:
        if state.get(noun) == 2 or noun not in sources:
            return
        if state.get(noun) == 1:
            cycle = trail[trail.index(noun) :] + [noun]
            path = sources[noun].path
            problems.append(
                Problem(path, None, None, f"references form a cycle: {' -> '.join(cycle)}")
            )
            return
        state[noun] = 1
        for target in sources[noun].references:
            visit(target, [*trail, noun])
        state[noun] = 2

    for noun in sources:
        visit(noun, [])
    return problems
