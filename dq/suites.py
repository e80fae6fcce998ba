"""Great Expectations suites, generated from the source declarations.

One suite per table, named after it, built fresh for every run from the
declarations that run checked (:mod:`dq.sources`, docs/sources.md):

* ``raw_<noun>``: the file contract (columns in order, not empty) is
  ``critical``; key quality is watched (``warning``): bad rows are quarantined
  by dbt, so they must be visible but do not stop the run on their own.
* ``stg_<noun>``: the clean layer is held to every declared rule (types, key,
  required, values, pattern, range, references, custom rules), to nothing
  lost (raw = clean + rejected) and to the rejected-share budget, all
  ``critical``. dbt routes rows with the same declared rules; GX gates.
* ``rejected_<noun>``: every row has a reason; its size is shown.
* marts: not empty. Their rules are dbt tests (``models/marts/*.yml``).
* features (``models/features/``): what a model learns from and scores, held
  to its rules here (types, ranges, one row per order), all ``critical``: a
  feature table that breaks them is never published, so no model sees it.

Each rule's literal lives in the declaration; nothing here repeats one.
Every expectation type used here is exercised on SQLite by the tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import great_expectations.expectations as gxe

from dq.sources import Column, Source

CRITICAL = "critical"
WARNING = "warning"

# Declared column types as SQLAlchemy reports them for SQLite (and PostgreSQL),
# then the pyspark.sql.types classes of Spark's (GX ignores names it does not know).
TEXT = ["TEXT", "VARCHAR", "CHARACTER VARYING", "StringType"]
INTEGER = ["INTEGER", "INT", "BIGINT", "IntegerType", "LongType"]
NUMBER = ["REAL", "FLOAT", "NUMERIC", "DECIMAL", "DOUBLE PRECISION", "DoubleType"]
CLEAN_TYPES = {
    "text": TEXT,
    "date": TEXT,
    "timestamp": TEXT,
    "integer": INTEGER,
    "boolean": INTEGER,
    "decimal": NUMBER,
    "money": NUMBER,
}
#: How SQLite spells "now" in the canonical text staging stores.
NOW = {"date": "date('now')", "timestamp": "datetime('now')"}
#: "now" and "is canonical text" per target (dq.targets): the rest of the SQL is portable.
DIALECT_NOW = {
    "sqlite": NOW,
    "postgres": {
        "date": "to_char(now() at time zone 'UTC', 'YYYY-MM-DD')",
        "timestamp": "to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS')",
    },
    # The session's time zone is UTC (dq.config spark_conf).
    "spark": {
        "date": "date_format(current_timestamp(), 'yyyy-MM-dd')",
        "timestamp": "date_format(current_timestamp(), 'yyyy-MM-dd HH:mm:ss')",
    },
}


def _rows(description: str, query: str, severity: str = CRITICAL) -> gxe.Expectation:
    """A rule in SQL: the query selects the rows that break it ({batch} is the table)."""
    return gxe.UnexpectedRowsExpectation(
        description=description, unexpected_rows_query=query, severity=severity
    )


def _canonical(column: str, kind: str, dialect: str = "sqlite") -> gxe.Expectation:
    shape = "YYYY-MM-DD HH:MM:SS" if kind == "timestamp" else "YYYY-MM-DD"
    if dialect == "sqlite":
        # SQLite has no date type: staging stores canonical text, which
        # date()/datetime() return unchanged.
        function = "datetime" if kind == "timestamp" else "date"
        broken = f"{function}({column}) is not {column}"
    else:
        # No {n} quantifiers: GX formats the query with str.format.
        digits = "[0-9][0-9]"
        time = f" {digits}:{digits}:{digits}" if kind == "timestamp" else ""
        regex = f"'^{digits}{digits}-{digits}-{digits}{time}$'"
        broken = f"not {column} rlike {regex}" if dialect == "spark" else f"{column} !~ {regex}"
    return _rows(
        f"{column} is a canonical '{shape}' {kind}",
        f"select * from {{batch}} where {column} is not null and {broken}",
    )


def _key(columns: list[str], severity: str = CRITICAL) -> list[gxe.Expectation]:
    out: list[gxe.Expectation] = [
        gxe.ExpectColumnValuesToNotBeNull(column=c, severity=severity) for c in columns
    ]
    if len(columns) == 1:
        out.append(gxe.ExpectColumnValuesToBeUnique(column=columns[0], severity=severity))
    elif columns:
        out.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=columns, severity=severity))
    return out


INTEGER_TEXT = r"-?[0-9]+"
DECIMAL_TEXT = r"-?([0-9]+(\.[0-9]*)?|\.[0-9]+)"
ISO_DATE_TEXT = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
ISO_TIMESTAMP_TEXT = ISO_DATE_TEXT + r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?"


def text_shape(column: Column) -> str | None:
    """A regular expression for the text a raw cell of this column holds when it
    can be clean, or None for free text. It shows bad raw values in Data Docs;
    the rule itself is applied by dbt (dq_clean_value) and audited on the clean table."""
    kind = column.type
    if kind == "integer" or (kind == "money" and column.unit == "cents"):
        return INTEGER_TEXT
    if kind in ("decimal", "money"):
        return DECIMAL_TEXT
    if kind == "boolean":
        words = sorted({*column.true_values, *column.false_values}, key=len, reverse=True)
        return "(?i)(" + "|".join(re.escape(w) for w in words) + ")"
    if kind in NOW and column.format == "iso":
        return ISO_TIMESTAMP_TEXT if kind == "timestamp" else ISO_DATE_TEXT
    if kind in NOW:
        parts = re.split(r"(%[YmdHMS])", column.format)
        return "".join(
            ("[0-9]{4}" if p == "%Y" else "[0-9]{2}")
            if p.startswith("%") and len(p) == 2
            else re.escape(p)
            for p in parts
            if p
        )
    return column.pattern


def raw_suite(source: Source) -> list[gxe.Expectation]:
    """Raw table: the file contract is critical; key quality and the text shape
    of typed columns are watched (warning: dbt quarantines such rows)."""
    out: list[gxe.Expectation] = [
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=list(source.raw_names)),
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *_key([source.raw_names[source.headers.index(h)] for h in source.key], severity=WARNING),
    ]
    nulls = "".join(f"|{re.escape(n)}" for n in source.nulls)
    for column, raw in zip(source.columns, source.raw_names, strict=True):
        shape = text_shape(column)
        if shape is None:
            continue
        flags = "(?i)" if shape.startswith("(?i)") else ""
        shape = shape.removeprefix("(?i)")
        out.append(
            gxe.ExpectColumnValuesToMatchRegex(
                column=raw,
                regex=rf"{flags}^\s*(?:{shape}{nulls})?\s*$",
                severity=WARNING,
            )
        )
    return out


def _column_rules(
    column: Column, sources: dict[str, Source], dialect: str = "sqlite"
) -> list[gxe.Expectation]:
    name, kind = column.name, column.type
    out: list[gxe.Expectation] = [
        gxe.ExpectColumnValuesToBeInTypeList(column=name, type_list=CLEAN_TYPES[kind])
    ]
    if column.required:
        out.append(gxe.ExpectColumnValuesToNotBeNull(column=name))
    if column.values is not None:
        values = [v.lower() for v in column.values] if column.lowercase else list(column.values)
        out.append(gxe.ExpectColumnValuesToBeInSet(column=name, value_set=values))
    if column.pattern is not None:
        out.append(gxe.ExpectColumnValuesToMatchRegex(column=name, regex=f"^(?:{column.pattern})$"))
    if kind == "boolean":
        out.append(gxe.ExpectColumnValuesToBeInSet(column=name, value_set=[0, 1]))
    for flag, _ in column.indicators:
        out.append(gxe.ExpectColumnValuesToBeInSet(column=flag, value_set=[0, 1]))
    if kind in ("integer", "decimal", "money") and (column.min, column.max) != (None, None):
        out.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=name, min_value=column.min, max_value=column.max
            )
        )
    if kind in NOW:
        out.append(_canonical(name, kind, dialect))
        for bound, op in ((column.min, "<"), (column.max, ">")):
            if bound is None:
                continue
            # Bounds are `now` or ISO texts (checked by dq.sources): safe literals.
            value = DIALECT_NOW[dialect][kind] if bound == "now" else f"'{bound}'"
            word = "before" if op == "<" else "after"
            out.append(
                _rows(
                    f"{name} is not {word} {bound}",
                    f"select * from {{batch}} where {name} {op} {value}",
                )
            )
    if column.references is not None:
        target = sources[column.references]
        key = target.clean_key[0]
        out.append(
            _rows(
                f"every {name} is a clean {column.references} {key}",
                # The clean key is never null (a missing key is rejected), so the
                # list is the key's index itself: no throw-away copy of it per query.
                f"select * from {{batch}} where {name} is not null and {name} not in"
                f" (select {key} from {target.clean_table})",
            )
        )
    return out


def clean_suite(
    source: Source, sources: dict[str, Source], dialect: str = "sqlite"
) -> list[gxe.Expectation]:
    """Clean table of one source: every declared rule, nothing lost, the budget."""
    raw, rejected, share = source.raw_table, source.rejected_table, source.max_rejected_share
    out: list[gxe.Expectation] = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        _rows(
            f"nothing lost: rows in {raw} = rows here + rows in {rejected}",
            f"select * from (select (select count(*) from {raw}) as raw_rows,"
            f" (select count(*) from {{batch}}) as clean_rows,"
            f" (select count(*) from {rejected}) as rejected_rows) as counts"
            f" where raw_rows <> clean_rows + rejected_rows",
        ),
        _rows(
            f"rejected share of {raw} is at most {share:.1%}",
            f"select * from (select (select count(*) from {rejected}) as rejected_rows,"
            f" (select count(*) from {{batch}}) as clean_rows) as counts"
            f" where rejected_rows > {share!r} * (clean_rows + rejected_rows)",
        ),
        *_key(list(source.clean_key)),
    ]
    for column in source.columns:
        out += _column_rules(column, sources, dialect)
    for rule in source.rules:
        out.append(
            _rows(
                f"no clean row breaks the rule: {rule.name}",
                f"select * from {{batch}} where ({rule.reject_if})",
            )
        )
    return out


def rejected_suite(source: Source) -> list[gxe.Expectation]:
    """Quarantine table: its row count is shown in Data Docs; every row has a reason.

    The budget itself is enforced on the clean table (see clean_suite).
    """
    return [
        gxe.ExpectTableRowCountToBeBetween(
            min_value=0,
            description=f"rows of {source.raw_table} quarantined (shown for monitoring)",
            severity="info",
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="reject_reason"),
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=[*source.raw_names, "reject_reason"]),
    ]


def mart_suite(name: str) -> list[gxe.Expectation]:
    return [gxe.ExpectTableRowCountToBeBetween(min_value=1)]


def _order_features() -> list[gxe.Expectation]:
    """``order_features``: one row per order of the ``orders`` mart, every
    feature in the range the model (dq/model.py) is trained on."""
    out: list[gxe.Expectation] = [
        _rows(
            "one row per order: as many rows here as in orders",
            "select * from (select (select count(*) from orders) as order_rows,"
            " (select count(*) from {batch}) as feature_rows) as counts"
            " where order_rows <> feature_rows",
        ),
        *_key(["order_id"]),
    ]
    integers = {
        "order_hour": (0, 23),
        "order_day_of_week": (0, 6),
        "previous_orders": (0, None),
        "includes_food": (0, 1),
    }
    for column, (low, high) in integers.items():
        out += [
            gxe.ExpectColumnValuesToNotBeNull(column=column),
            gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=INTEGER),
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high),
        ]
    out += [
        gxe.ExpectColumnValuesToBeInSet(column="includes_food", value_set=[0, 1]),
        gxe.ExpectColumnValuesToNotBeNull(column="location_id"),
        # Null for a first order (no history); else a share.
        gxe.ExpectColumnValuesToBeInTypeList(column="previous_food_share", type_list=NUMBER),
        gxe.ExpectColumnValuesToBeBetween(column="previous_food_share", min_value=0, max_value=1),
        _rows(
            "previous_food_share is null exactly for a first order",
            "select * from {batch} where (previous_orders = 0) <> (previous_food_share is null)",
        ),
    ]
    return out


#: The rules of each feature table (``models/features/<name>.sql``), by name.
FEATURE_RULES = {"order_features": _order_features}


def feature_suite(name: str) -> list[gxe.Expectation]:
    """A feature table: not empty, and its own rules (:data:`FEATURE_RULES`)."""
    rules = FEATURE_RULES.get(name)
    return [gxe.ExpectTableRowCountToBeBetween(min_value=1), *(rules() if rules else [])]


def notes(source: Source, table: str) -> list[str]:
    """The declaration's descriptions, for the suite's page in Data Docs."""
    lines = [
        source.description or f"The {source.noun} source.",
        f"Declared in seeds/{source.noun}.yml.",
    ]
    if table == source.clean_table:
        for column in source.columns:
            text = f"{column.name} ({column.type})"
            if column.description:
                text += f": {column.description}"
            lines.append(text)
    return lines


def declare(
    sources: dict[str, Source],
    marts: Iterable[str] = (),
    features: Iterable[str] = (),
    dialect: str = "sqlite",
) -> dict[str, dict[str, list[gxe.Expectation]]]:
    """All suites, grouped by layer: ``{"raw": {table: [...]}, "transformed": {...}}``,
    their SQL in the ``dialect`` of the target (:mod:`dq.targets`) they validate.

    Built fresh on every call: GX binds an expectation to the suite it is added to.
    """
    raw = {s.raw_table: raw_suite(s) for s in sources.values()}
    transformed: dict[str, list[gxe.Expectation]] = {}
    for source in sources.values():
        transformed[source.clean_table] = clean_suite(source, sources, dialect)
        transformed[source.rejected_table] = rejected_suite(source)
    for mart in marts:
        transformed[mart] = mart_suite(mart)
    for table in features:
        transformed[table] = feature_suite(table)
    return {"raw": raw, "transformed": transformed}


def suite_notes(sources: Iterable[Source]) -> dict[str, list[str]]:
    """Data Docs notes per suite name."""
    out = {}
    for source in sources:
        for table in (source.raw_table, source.clean_table, source.rejected_table):
            out[table] = notes(source, table)
    return out
