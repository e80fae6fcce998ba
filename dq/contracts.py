"""The raw-file contracts, read from the one place they are declared.

``seeds/_seeds.yml`` is both dbt's seed configuration and our contract: the
ordered keys of ``column_types`` are the expected header of each CSV, and
``meta`` carries the primary key and the largest rejected share a source
tolerates. Preflight, the GX raw suites and the quarantine gate all read it
through :func:`load_contracts`.

A contract file that cannot be read is bad input like a broken CSV: every
problem is a :class:`Problem` (``file:line:column: message``) and
:func:`load_contracts` raises :class:`ContractError`, a :class:`BadInput`.
The two classes live here, not in :mod:`dq.preflight`, because preflight
imports this module and both report problems the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

CONTRACT_FILE = "_seeds.yml"

#: A seed name is a file name (``<name>.csv`` in the seeds folder) and a SQL
#: table name: nothing that could point outside the folder or need quoting.
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: The contract is a short hand-written file; a bigger one is a mistake.
MAX_CONTRACT_BYTES = 1 << 20


def printable(text: str) -> str:
    """``text`` with non-printable characters (newlines, ANSI escapes, bidi
    controls, undecodable bytes) escaped as in ``repr``, so that a file name
    or a value can never start a line of its own in our output."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
        for c in text
    )


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input file (a CSV or the contract file)."""

    path: Path
    line: int | None
    column: int | None
    message: str

    def __str__(self) -> str:
        # A backslash in a path is escaped too, so an escaped "\n" is never
        # mistaken for a file literally named with a backslash and an "n".
        where = printable(str(self.path).replace("\\", "\\\\"))
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {printable(self.message)}"


class BadInput(Exception):
    """Input files have problems (exit 2); ``problems`` lists them all."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ContractError(BadInput):
    """The contract file is missing, not YAML, or lacks what a contract needs."""


@dataclass(frozen=True)
class Contract:
    """What one raw CSV must look like."""

    name: str
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]
    max_rejected_share: float
    staging_table: str

    @property
    def file_name(self) -> str:
        return f"{self.name}.csv"

    @property
    def rejected_table(self) -> str:
        """The quarantine table dbt builds for this source."""
        return "rejected_" + self.name.removeprefix("raw_")


class _Mapping(dict):
    """A YAML mapping that remembers where it and each of its values start."""

    line: int
    column: int
    marks: dict


class _Sequence(list):
    """A YAML list that remembers where each of its items starts."""

    marks: list


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose mappings and lists remember their positions."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Mapping:
    mapping = _Mapping(loader.construct_mapping(node, deep=True))
    mapping.line, mapping.column = node.start_mark.line + 1, node.start_mark.column + 1
    mapping.marks = {
        loader.construct_object(key, deep=True): (
            value.start_mark.line + 1,
            value.start_mark.column + 1,
        )
        for key, value in node.value
    }
    return mapping


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> _Sequence:
    sequence = _Sequence(loader.construct_sequence(node, deep=True))
    sequence.marks = [(item.start_mark.line + 1, item.start_mark.column + 1) for item in node.value]
    return sequence


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


class _Reader:
    """Collects the problems of one contract file with their positions."""

    def __init__(self, path: Path):
        self.path = path
        self.problems: list[Problem] = []

    def at(self, mapping: _Mapping, key: str | None, message: str) -> None:
        """A problem at ``mapping[key]`` (or at the mapping itself)."""
        line, column = mapping.marks.get(key, (mapping.line, mapping.column))
        self.problems.append(Problem(self.path, line, column, message))

    def get(self, mapping: _Mapping, key: str, kind: type, what: str, where: str):
        """``mapping[key]`` if it is a ``kind``; else record a problem, return None."""
        if key not in mapping:
            self.at(mapping, None, f"{where}: {key!r} is missing; expected {what}")
            return None
        value = mapping[key]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            self.at(mapping, key, f"{where}: {key!r} must be {what}, not {value!r}")
            return None
        return value


def _read(path: Path) -> object:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ContractError([Problem(path, None, None, "contract file missing")]) from None
    if size > MAX_CONTRACT_BYTES:
        raise ContractError(
            [Problem(path, None, None, f"contract file is {size} bytes; at most 1 MiB expected")]
        )
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise ContractError(
            [Problem(path, line, column, "not valid UTF-8; save the file as UTF-8")]
        ) from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = "; ".join(str(s) for s in (exc.context, exc.problem) if s)
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise ContractError([Problem(path, line, column, f"not valid YAML: {detail}")]) from None
    except yaml.YAMLError as exc:
        raise ContractError([Problem(path, None, None, f"not valid YAML: {exc}")]) from None


def _contract(reader: _Reader, seed: _Mapping) -> Contract | None:
    name = reader.get(seed, "name", str, "the seed's name", "seed")
    if name is None:
        return None
    if not NAME_PATTERN.fullmatch(name):
        reader.at(
            seed,
            "name",
            f"seed name {name!r} must be letters, digits and underscores "
            "(it names a file in the seeds folder and a table)",
        )
        return None
    config = reader.get(seed, "config", dict, "a mapping", name)
    if config is None:
        return None
    columns = reader.get(config, "column_types", dict, "a mapping of column: type", name)
    meta = reader.get(config, "meta", dict, "a mapping with staging and primary_key", name)
    if columns is not None:
        if not columns:
            reader.at(config, "column_types", f"{name}: 'column_types' lists no columns")
            columns = None
        elif not all(isinstance(c, str) and c for c in columns):
            reader.at(config, "column_types", f"{name}: column names must be non-empty text")
            columns = None
    if meta is None:
        return None
    staging = reader.get(meta, "staging", str, "the staging model's name", name)
    if staging is not None and not NAME_PATTERN.fullmatch(staging):
        reader.at(meta, "staging", f"{name}: staging model {staging!r} is not a plain name")
        staging = None
    key = reader.get(meta, "primary_key", (str, list), "a column or a list of columns", name)
    if key is not None:
        key = tuple(key) if isinstance(key, list) else (key,)
        unknown = [k for k in key if not isinstance(k, str) or columns and k not in columns]
        if not key or unknown:
            reader.at(meta, "primary_key", f"{name}: primary_key {list(key)!r} is not its columns")
            key = None
    share = meta.get("max_rejected_share", 0.0)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        reader.at(meta, "max_rejected_share", f"{name}: max_rejected_share must be 0..1")
        share = None
    if None in (columns, staging, key, share):
        return None
    return Contract(
        name=name,
        columns=tuple(columns),
        primary_key=key,
        max_rejected_share=float(share),
        staging_table=staging,
    )


def load_contracts(seeds_dir: Path) -> dict[str, Contract]:
    """All contracts, keyed by seed name, in declaration order.

    Raises :class:`ContractError` listing every problem with its line when
    the file is missing, not YAML, or an entry lacks a safe ``name``,
    ``config.column_types`` or ``config.meta`` (``staging``, ``primary_key``).
    """
    path = Path(seeds_dir) / CONTRACT_FILE
    doc = _read(path)
    reader = _Reader(path)
    if not isinstance(doc, _Mapping):
        raise ContractError([Problem(path, 1, None, "expected a mapping with a 'seeds' list")])
    seeds = reader.get(doc, "seeds", list, "a list of seeds", "contract")
    contracts: dict[str, Contract] = {}
    for position, seed in enumerate(seeds or [], start=1):
        if not isinstance(seed, _Mapping):
            line, column = seeds.marks[position - 1]
            reader.problems.append(
                Problem(path, line, column, f"seeds entry {position} must be a mapping")
            )
            continue
        contract = _contract(reader, seed)
        if contract is None:
            continue
        if contract.name in contracts:
            reader.at(seed, "name", f"seed {contract.name!r} is declared twice")
            continue
        contracts[contract.name] = contract
    if seeds == []:
        reader.at(doc, "seeds", "the 'seeds' list is empty")
    if reader.problems:
        raise ContractError(reader.problems)
    return contracts
