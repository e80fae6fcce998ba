"""Great Expectations suites, declared in code: one suite per table, named after it.

Raw suites check what the file contract promises (columns, non-empty) as
``critical`` and watch raw quality (keys, numbers-as-text) as ``warning``:
bad rows are quarantined by staging, so they must be visible but must not stop
the run on their own. Transformed suites hold the cleaned tables to their
promises (types, keys, ranges, reconciliation with raw + rejected, the
rejected-share budget) as ``critical``: any failure there stops publishing.

Every expectation type used here is exercised on SQLite by the tests.
"""

from __future__ import annotations

from collections.abc import Iterable

import great_expectations.expectations as gxe

from dq.contracts import Contract

CRITICAL = "critical"
WARNING = "warning"

# Declared column types as SQLAlchemy reports them for SQLite (and PostgreSQL).
TEXT = ["TEXT", "VARCHAR", "CHARACTER VARYING"]
INTEGER = ["INTEGER", "INT", "BIGINT"]
NUMBER = ["REAL", "FLOAT", "NUMERIC", "DECIMAL", "DOUBLE PRECISION"]

ISO_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?$"
WHOLE_NUMBER = r"^-?[0-9]+$"


def _types(columns: dict[str, list[str]]) -> list[gxe.Expectation]:
    return [gxe.ExpectColumnValuesToBeInTypeList(column=c, type_list=t) for c, t in columns.items()]


def _keys(*columns: str) -> list[gxe.Expectation]:
    out: list[gxe.Expectation] = []
    for column in columns:
        out.append(gxe.ExpectColumnValuesToNotBeNull(column=column))
        out.append(gxe.ExpectColumnValuesToBeUnique(column=column))
    return out


def _rows(description: str, query: str, severity: str = CRITICAL) -> gxe.Expectation:
    """A rule in SQL: the query selects the rows that break it ({batch} is the table)."""
    return gxe.UnexpectedRowsExpectation(
        description=description, unexpected_rows_query=query, severity=severity
    )


def _timestamps(*columns: str) -> list[gxe.Expectation]:
    # Staging stores canonical 'YYYY-MM-DD HH:MM:SS' text (SQLite has no
    # timestamp type); datetime() round-trips exactly those values.
    return [
        _rows(
            f"{c} is a canonical 'YYYY-MM-DD HH:MM:SS' timestamp",
            f"select * from {{batch}} where {c} is null or datetime({c}) is not {c}",
        )
        for c in columns
    ]


def raw_suite(contract: Contract) -> list[gxe.Expectation]:
    """Raw table: the contract is critical, row quality is watched (warning)."""
    expectations: list[gxe.Expectation] = [
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=list(contract.columns)),
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
    ]
    for column in contract.primary_key:
        expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=column, severity=WARNING))
    if len(contract.primary_key) == 1:
        expectations.append(
            gxe.ExpectColumnValuesToBeUnique(column=contract.primary_key[0], severity=WARNING)
        )
    else:
        expectations.append(
            gxe.ExpectCompoundColumnsToBeUnique(
                column_list=list(contract.primary_key), severity=WARNING
            )
        )
    return expectations


#: Extra raw checks per source, on top of the contract.
RAW_EXTRA: dict[str, list[gxe.Expectation]] = {
    "raw_orders": [
        gxe.ExpectColumnValuesToMatchRegex(column=c, regex=WHOLE_NUMBER, severity=WARNING)
        for c in ("subtotal", "tax_paid", "order_total")
    ]
    + [
        gxe.ExpectColumnValuesToMatchRegex(
            column="ordered_at", regex=ISO_TIMESTAMP, severity=WARNING
        )
    ],
    "raw_products": [
        gxe.ExpectColumnValuesToMatchRegex(column="price", regex=WHOLE_NUMBER, severity=WARNING)
    ],
    "raw_supplies": [
        gxe.ExpectColumnValuesToMatchRegex(column="cost", regex=WHOLE_NUMBER, severity=WARNING)
    ],
}


def staging_suite(contract: Contract) -> list[gxe.Expectation]:
    """Clean table of one source: reconciliation and the rejected-share budget."""
    rejected = contract.rejected_table
    share = contract.max_rejected_share
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        _rows(
            f"nothing lost: rows in {contract.name} = rows here + rows in {rejected}",
            f"select * from (select (select count(*) from {contract.name}) as raw_rows,"
            f" (select count(*) from {{batch}}) as clean_rows,"
            f" (select count(*) from {rejected}) as rejected_rows)"
            f" where raw_rows <> clean_rows + rejected_rows",
        ),
        _rows(
            f"rejected share of {contract.name} is at most {share:.1%}",
            f"select * from (select (select count(*) from {rejected}) as rejected_rows,"
            f" (select count(*) from {{batch}}) as clean_rows)"
            f" where rejected_rows > {share!r} * (clean_rows + rejected_rows)",
        ),
    ]


#: Transformed tables: their own rules (the staging ones add staging_suite).
TRANSFORMED: dict[str, list[gxe.Expectation]] = {
    "stg_customers": [
        *_types({"customer_id": TEXT, "customer_name": TEXT}),
        *_keys("customer_id"),
        _rows(
            "names are trimmed", "select * from {batch} where customer_name <> trim(customer_name)"
        ),
    ],
    "stg_locations": [
        *_types({"location_id": TEXT, "tax_rate": NUMBER, "opened_at": TEXT}),
        *_keys("location_id"),
        gxe.ExpectColumnValuesToBeBetween(column="tax_rate", min_value=0, max_value=0.25),
        *_timestamps("opened_at"),
    ],
    "stg_products": [
        *_types({"product_id": TEXT, "product_price": NUMBER, "is_food_item": INTEGER}),
        *_keys("product_id"),
        gxe.ExpectColumnValuesToBeInSet(column="product_type", value_set=["jaffle", "beverage"]),
        gxe.ExpectColumnValuesToBeBetween(column="product_price", min_value=0),
    ],
    "stg_supplies": [
        *_types({"supply_uuid": TEXT, "supply_cost": NUMBER, "is_perishable_supply": INTEGER}),
        *_keys("supply_uuid"),
        gxe.ExpectColumnValuesToBeBetween(column="supply_cost", min_value=0),
    ],
    "stg_orders": [
        *_types({"order_id": TEXT, "subtotal": NUMBER, "tax_paid": NUMBER, "order_total": NUMBER}),
        *_keys("order_id"),
        gxe.ExpectColumnValuesToBeBetween(column="order_total", min_value=0),
        _rows(
            "subtotal + tax_paid = order_total",
            "select * from {batch} where abs(subtotal + tax_paid - order_total) >= 0.005",
        ),
        *_timestamps("ordered_at"),
    ],
    "stg_order_items": [
        *_types({"order_item_id": TEXT, "order_id": TEXT, "product_id": TEXT}),
        *_keys("order_item_id"),
        _rows(
            "every item belongs to a clean order",
            "select * from {batch} where order_id not in (select order_id from stg_orders)",
        ),
    ],
    "orders": [
        *_types(
            {
                "order_id": TEXT,
                "order_total": NUMBER,
                "order_cost": NUMBER,
                "count_order_items": INTEGER,
                "customer_order_number": INTEGER,
            }
        ),
        *_keys("order_id"),
        gxe.ExpectColumnValuesToBeBetween(column="customer_order_number", min_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="is_food_order", value_set=[0, 1]),
        _rows(
            "every clean order reaches the mart",
            "select * from (select (select count(*) from {batch}) as n,"
            " (select count(*) from stg_orders) as m) where n <> m",
        ),
        *_timestamps("ordered_at"),
    ],
    "order_items": [
        *_types({"order_item_id": TEXT, "product_price": NUMBER, "supply_cost": NUMBER}),
        *_keys("order_item_id"),
        gxe.ExpectColumnValuesToBeBetween(column="product_price", min_value=0),
    ],
    "customers": [
        *_types({"customer_id": TEXT, "lifetime_spend": NUMBER, "count_lifetime_orders": INTEGER}),
        *_keys("customer_id"),
        gxe.ExpectColumnValuesToBeInSet(column="customer_type", value_set=["new", "returning"]),
        gxe.ExpectColumnValuesToBeBetween(column="lifetime_spend", min_value=0),
        _rows(
            "lifetime spend equals the sum of the customer's orders",
            "select * from {batch} where customer_id in (select customers.customer_id"
            " from customers left join (select customer_id, sum(order_total) as spend"
            " from orders group by customer_id) as spend"
            " on spend.customer_id = customers.customer_id"
            " where abs(customers.lifetime_spend - coalesce(spend.spend, 0)) >= 0.005)",
        ),
    ],
}


def rejected_suite(contract: Contract) -> list[gxe.Expectation]:
    """Quarantine table: its row count is shown in Data Docs; every row has a reason.

    The budget itself is enforced on the staging table (see staging_suite).
    """
    return [
        gxe.ExpectTableRowCountToBeBetween(
            min_value=0,
            description=f"rows of {contract.name} quarantined (shown for monitoring)",
            severity="info",
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="reject_reason"),
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=[*contract.columns, "reject_reason"]),
    ]


def declare(contracts: Iterable[Contract]) -> dict[str, dict[str, list[gxe.Expectation]]]:
    """All suites, grouped by layer: ``{"raw": {table: [...]}, "transformed": {...}}``.

    Built fresh on every call: GX binds an expectation to the suite it is added to.
    """
    contracts = list(contracts)
    raw = {c.name: raw_suite(c) + _fresh(RAW_EXTRA.get(c.name, [])) for c in contracts}
    transformed = {name: _fresh(exps) for name, exps in TRANSFORMED.items()}
    for c in contracts:
        transformed[c.staging_table] = staging_suite(c) + transformed[c.staging_table]
        transformed[c.rejected_table] = rejected_suite(c)
    return {"raw": raw, "transformed": transformed}


def _fresh(expectations: list[gxe.Expectation]) -> list[gxe.Expectation]:
    return [e.copy(deep=True) for e in expectations]
