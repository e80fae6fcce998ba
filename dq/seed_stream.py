"""dbt seeds read as a stream instead of a whole agate table (issue 13).

dbt's seed materialization calls ``load_agate_table()``, i.e.
``dbt_common.clients.agate_helper.from_csv``, which reads the whole CSV into an
``agate.Table``; a run keeps every seed's table until dbt ends (``RunResult.agate_table``),
so three years of raw data took 1.5 GB. :func:`install` (called by
:func:`dq.dbt_hooks.install`, so only in processes that run dbt through
:func:`dq.dbt.invoke`) puts :func:`open_table` in front of that function: a file whose
columns are all forced to text (the pipeline's seeds: ``column_types`` from
``seeds/<noun>.yml``, :mod:`dq.generate`) comes back as a :class:`StreamedTable`, which
holds the header and the row count and reads the file again, a batch at a time, whenever
its rows are iterated. Anything else goes to agate as before.

What a :class:`StreamedTable` gives is exactly what agate gives for the same file:

- the same file reading: UTF-8, universal newlines (a quoted CRLF arrives as LF), a
  leading BOM skipped, Python's ``csv`` with the seed's delimiter;
- the same column names (agate's own ``deduplicate``: ``a, a`` -> ``a, a_2``, a blank
  name -> a letter, with agate's warnings), the same column types (the very ``Text``
  objects of dbt's type tester);
- the same values: ``Text.cast`` of every cell (``None`` when ``cell.strip().lower()`` is
  a null value of the type, ``'null'`` or ``''``, else the cell unchanged), rows shorter
  than the header padded with ``None``.

A file agate would reject or treat specially is left to agate, which then fails or
succeeds exactly as without the hook: an empty file or an empty first line (no header),
a row with more values than the header, a CSV error (a field over the size limit), a
decoding error, a delimiter the csv module refuses; so is a file with a column that is
not forced to text (agate infers its type).

Row count: the materialization evaluates ``agate_table.rows | length`` before loading,
so :func:`open_table` reads the file once up front. Without a quote character anywhere in
the file a record is a line (no field can hold a line break), and the pass splits the
text into lines and counts delimiters in C; otherwise ``csv.reader`` parses the file
and only the length of each row is kept. The pass also finds over-long rows. Memory is
one chunk of text (:data:`CHUNK`) or one batch of rows, whatever the file's size.
"""

from __future__ import annotations

import csv
import itertools
import logging
import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

#: Characters of text read at a time by the line-based passes.
CHUNK = 1 << 20
#: Rows per read when a caller iterates rows one by one (a stock loader).
ROW_BATCH = 1000
BOM = "\ufeff"
#: The csv module's default quote character: the one agate's reader uses.
QUOTE = '"'


def _open(path: str):
    """The file as dbt opens a seed: UTF-8, universal newlines, a leading BOM skipped."""
    handle = open(path, encoding="utf-8")  # noqa: SIM115  # pylint: disable=consider-using-with
    if handle.read(1) != BOM:
        handle.seek(0)
    return handle


def _header(path: str, delimiter: str) -> tuple[list[str] | None, list]:
    """The first record and agate's column names for it (None: no header); the
    warnings agate's ``deduplicate`` gave (duplicate or blank names)."""
    from agate.utils import deduplicate

    with _open(path) as handle:
        first = next(csv.reader(handle, delimiter=delimiter), None)
    if not first:
        return None, []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = list(deduplicate(first, column_names=True))
    return names, caught


def _count_plain(path: str, delimiter: str, width: int) -> int | None:
    """Data rows of a file without quote characters, where a record is a line; None if
    the file holds a quote, a row wider than the header or a line longer than csv's
    field size limit (csv.reader decides then: it may reject a field)."""
    lines = 0
    widest = 0  # delimiters on one line
    longest = 0
    limit = csv.field_size_limit()
    tail = ""
    count = str.count
    with _open(path) as handle:
        while chunk := handle.read(CHUNK):
            if QUOTE in chunk:
                return None
            parts = (tail + chunk).split("\n")
            tail = parts.pop()
            if len(tail) > limit:
                return None
            lines += len(parts)
            widest = max(widest, max(map(count, parts, itertools.repeat(delimiter)), default=0))
            longest = max(longest, max(map(len, parts), default=0))
    if tail:
        lines += 1
        widest = max(widest, tail.count(delimiter))
        longest = max(longest, len(tail))
    if widest + 1 > width or longest > limit:
        return None
    return lines - 1  # the header


def _count_csv(path: str, delimiter: str, width: int) -> int | None:
    """Data rows as csv.reader parses them; None if one is wider than the header."""
    with _open(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        next(reader)
        lengths = Counter(map(len, reader))
    if lengths and max(lengths) > width:
        return None
    return sum(lengths.values())


def _text_fast(types: tuple) -> frozenset | None:
    """The null values if every type is agate's own ``Text`` with the same null values
    and ``cast_nulls``: then cells are cast inline (:func:`_cast_text`), else None."""
    from agate.data_types import Text

    nulls = {tuple(t.null_values) for t in types}
    # Exactly Text: a subclass may cast otherwise.
    exact = all(type(t) is Text for t in types)  # pylint: disable=unidiomatic-typecheck
    if len(nulls) != 1 or not exact or not all(t.cast_nulls for t in types):
        return None
    return frozenset(nulls.pop())


def _cast_text(cells: list, nulls: frozenset) -> list:
    """``Text.cast`` of every cell (agate: ``d.strip().lower() in null_values`` -> None,
    else ``str(d)``, which is ``d`` itself for a ``str``); None (padding) stays None."""
    return [None if v is None or v.strip().lower() in nulls else v for v in cells]


class StreamedTable:
    """What the seed macros use of an ``agate.Table``, read from the file on demand.

    ``column_names``, ``column_types`` and ``original_abspath`` as agate's; ``rows``
    (:class:`StreamedRows`) has a ``len()`` and yields ``agate.Row`` objects;
    :meth:`flat_batches` yields whole batches of values ready to bind, which the
    project's loader (``dbt_project/macros/seed_loader.sql``) uses. Any other
    attribute of ``agate.Table`` (``order_by`` for ``dbt seed --show``, ``print_table``,
    ``columns``...) reads the file into a real agate table first and answers from it.
    """

    def __init__(  # pylint: disable=too-many-arguments
        self,
        path: str,
        *,
        names: list[str],
        types: tuple,
        delimiter: str,
        row_count: int,
        plain: bool,
        reader: Callable,
        text_columns,
    ) -> None:
        self.original_abspath = os.path.abspath(path)
        self._path = path
        self._names = tuple(names)
        self._types = tuple(types)
        self._delimiter = delimiter
        self._row_count = row_count
        self._plain = plain
        self._reader = reader
        self._text_columns = text_columns
        self._nulls = _text_fast(self._types)
        self._materialized = None
        #: largest number of rows one read has held so far (tests check it stays bounded)
        self.largest_batch = 0

    @property
    def column_names(self) -> tuple:
        """agate's names of the columns (deduplicated header)."""
        return self._names

    @property
    def column_types(self) -> tuple:
        """The agate type of each column (dbt's type tester's own objects)."""
        return self._types

    @property
    def rows(self) -> StreamedRows:
        """The rows, read from the file whenever iterated."""
        return StreamedRows(self)

    def __len__(self) -> int:
        return self._row_count

    def __iter__(self):
        return iter(self.rows)

    def __repr__(self) -> str:
        return f"<StreamedTable {self._path!r}: {len(self._names)} columns, {len(self)} rows>"

    # -- reading ------------------------------------------------------------------------

    def _raw_batches(self, batch_size: int) -> Iterator[tuple[list, int, bool]]:
        """(cells, rows, padded): the fields of up to ``batch_size`` records in file
        order, flattened row by row; ``padded`` if None was added to short rows."""
        batch_size = max(int(batch_size), 1)
        width = len(self._names)
        with _open(self._path) as handle:
            if self._plain:
                handle.readline()  # the header: a line, as the file holds no quotes
                yield from self._plain_batches(handle, batch_size, width)
            else:
                reader = csv.reader(handle, delimiter=self._delimiter)
                next(reader, None)  # the header
                while records := list(itertools.islice(reader, batch_size)):
                    yield self._flatten(records, width)

    def _plain_batches(self, handle, batch_size: int, width: int):
        delimiter = self._delimiter
        pending: list[str] = []
        tail = ""
        while chunk := handle.read(CHUNK):
            parts = (tail + chunk).split("\n")
            tail = parts.pop()
            pending += parts
            while len(pending) >= batch_size:
                lines = pending[:batch_size]
                del pending[:batch_size]
                yield self._split_lines(lines, delimiter, width)
        if tail:
            pending.append(tail)
        for start in range(0, len(pending), batch_size):
            yield self._split_lines(pending[start : start + batch_size], delimiter, width)

    def _split_lines(self, lines: list[str], delimiter: str, width: int):
        self.largest_batch = max(self.largest_batch, len(lines))
        cells = delimiter.join(lines).split(delimiter)
        # No line is wider than the header (the count pass): if the total matches,
        # every line has exactly `width` fields and the split is row-aligned.
        if len(cells) == len(lines) * width:
            return cells, len(lines), False
        # csv.reader gives [] for a blank line and a list per line otherwise.
        return self._flatten([line.split(delimiter) if line else [] for line in lines], width)

    def _flatten(self, records: list[list[str]], width: int):
        self.largest_batch = max(self.largest_batch, len(records))
        cells = list(itertools.chain.from_iterable(records))
        if len(cells) == len(records) * width:
            return cells, len(records), False
        cells = []
        for index, record in enumerate(records):
            if len(record) > width:  # the file changed since the count pass
                raise ValueError(
                    f"{self._path}: a row has {len(record)} values, but the table only has"
                    f" {width} columns (batch row {index})."
                )
            cells += record
            cells += [None] * (width - len(record))
        return cells, len(records), True

    def _cast(self, cells: list) -> list:
        if self._nulls is not None:
            return _cast_text(cells, self._nulls)
        casts = itertools.cycle([t.cast for t in self._types])
        return [cast(v) for cast, v in zip(casts, cells, strict=False)]  # cycle: endless

    def flat_batches(self, batch_size: int, transform: Callable | None = None) -> Iterator[list]:
        """Values of ``batch_size`` rows at a time (the last batch may be shorter), row
        after row in one flat list, as agate's rows hold them.

        ``transform`` is the adapter's conversion of a list of values for binding (dbt-
        sqlite's ``transform_seed_row``: Decimal -> str); text values (str or None) pass
        it unchanged, so a table whose columns are all text does not call it.
        """
        all_text = self._nulls is not None
        for cells, _rows, _padded in self._raw_batches(batch_size):
            values = self._cast(cells)
            yield values if transform is None or all_text else transform(values)

    # -- what else dbt may use -------------------------------------------------------

    def matrix(self) -> StreamedMatrix:
        """``agate_helper.as_matrix`` of this table, without holding it (``store_result``)."""
        return StreamedMatrix(self)

    def _agate(self):
        """The real agate table of the file (read whole: for uses beyond the seed
        macros, such as ``dbt seed --show``)."""
        if self._materialized is None:
            log.debug("seed %s read whole by agate for a table method", self._path)
            table = self._reader(
                self._path, text_columns=self._text_columns, delimiter=self._delimiter
            )
            table.original_abspath = self.original_abspath
            self._materialized = table
        return self._materialized

    def __getattr__(self, name: str):
        import agate

        if name.startswith("_") or not hasattr(agate.Table, name):
            raise AttributeError(name)
        return getattr(self._agate(), name)


class StreamedRows:
    """``table.rows``: ``len()`` without reading, ``agate.Row`` objects read a batch at a
    time on each iteration."""

    def __init__(self, table: StreamedTable) -> None:
        self._table = table

    def __len__(self) -> int:
        return len(self._table)

    def __iter__(self) -> Iterator:
        from agate import Row

        names = self._table.column_names
        width = len(names)
        for values in self._table.flat_batches(ROW_BATCH):
            for start in range(0, len(values), width):
                yield Row(values[start : start + width], names)

    def values(self) -> Iterator:
        """As ``MappedSequence.values()``: the rows (here lazily)."""
        return iter(self)

    def __getitem__(self, key):
        return self._table._agate().rows[key]  # pylint: disable=protected-access


class StreamedMatrix:
    """``as_matrix`` of a :class:`StreamedTable`: a tuple of values per row, read on demand."""

    def __init__(self, table: StreamedTable) -> None:
        self._table = table

    def __len__(self) -> int:
        return len(self._table)

    def __iter__(self) -> Iterator[tuple]:
        return (row.values() for row in self._table.rows)

    def __getitem__(self, key):
        return list(self)[key]


def open_table(path: str, text_columns, delimiter: str = ",", *, reader: Callable):
    """A :class:`StreamedTable` of the seed at ``path`` if every column is forced to text
    and agate would read the file without complaint; else None (agate reads it)."""
    from dbt_common.clients import agate_helper

    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '\r\n"':
        return None
    try:
        names, caught = _header(path, delimiter)
        if names is None:
            return None
        tester = agate_helper.build_type_tester(text_columns=text_columns)
        forced = getattr(tester, "_force", None)
        if not isinstance(forced, dict) or not all(name in forced for name in names):
            return None
        types = tuple(forced[name] for name in names)
        row_count = _count_plain(path, delimiter, len(names))
        plain = row_count is not None
        if not plain:
            row_count = _count_csv(path, delimiter, len(names))
        if row_count is None:
            return None
    except (csv.Error, UnicodeError, OSError):
        return None  # agate raises its own error for the file
    for warning in caught:  # agate's, about the header
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    for name in forced:  # agate's TypeTester warns of a forced type matching no column
        if name not in names:
            warnings.warn(
                f'"{name}" does not match the name of any column in this table.',
                RuntimeWarning,
                stacklevel=2,
            )
    log.debug("seed %s streamed: %d columns, %d rows", path, len(names), row_count)
    return StreamedTable(
        path,
        names=names,
        types=types,
        delimiter=delimiter,
        row_count=row_count,
        plain=plain,
        reader=reader,
        text_columns=text_columns,
    )


def install(enabled: Callable[[], bool]) -> None:
    """Route ``agate_helper.from_csv`` through :func:`open_table` whenever ``enabled()``,
    and ``as_matrix`` of a streamed table to :meth:`StreamedTable.matrix` (once per
    process)."""
    from dbt_common.clients import agate_helper

    if getattr(agate_helper.from_csv, "dq_streamed", False):
        return

    original_from_csv = agate_helper.from_csv
    original_as_matrix = agate_helper.as_matrix

    def from_csv(abspath, text_columns, delimiter=","):
        if enabled():
            table = open_table(abspath, text_columns, delimiter, reader=original_from_csv)
            if table is not None:
                return table
        return original_from_csv(abspath, text_columns=text_columns, delimiter=delimiter)

    def as_matrix(table):
        if isinstance(table, StreamedTable):
            return table.matrix()
        return original_as_matrix(table)

    from_csv.dq_streamed = True
    from_csv.__wrapped__ = original_from_csv
    agate_helper.from_csv = from_csv
    agate_helper.as_matrix = as_matrix
