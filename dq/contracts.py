"""How input problems are reported, and YAML read with positions.

A declaration (``seeds/<noun>.yml``, read by :mod:`dq.sources`) that cannot
be read is bad input like a broken CSV: every problem is a :class:`Problem`
(``file:line:column: message``) and the reader raises :class:`ContractError`,
a :class:`BadInput`. They live here, not in :mod:`dq.preflight`, because
preflight and :mod:`dq.sources` both report problems the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

#: A declaration is a short hand-written file; a bigger one is a mistake.
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
    """One thing wrong with one input file (a CSV or a declaration)."""

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
    """A declaration is missing, not YAML, or lacks what a declaration needs."""


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


# YAML 1.2 booleans: only true/false. YAML 1.1 (PyYAML's default) also reads
# yes/no/on/off as booleans, which would turn `true_values: [yes, no]` or
# `values: [on, off]` into [True, False].
_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


class _Reader:
    """Collects the problems of one declaration with their positions."""

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
        raise ContractError([Problem(path, None, None, "declaration missing")]) from None
    if size > MAX_CONTRACT_BYTES:
        raise ContractError(
            [Problem(path, None, None, f"declaration is {size} bytes; at most 1 MiB expected")]
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
