"""Every expectation type the suites use works on SQLite: passes on good rows,
fails on bad ones (GX itself skips SQLite for some of them in its own tests)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import great_expectations as gx
import great_expectations.expectations as gxe
import pytest

from dq import config, suites
from dq import validate as dq_validate
from dq.sources import load_sources
from tests.conftest import REPO

GOOD = [("a", "2018-09-01 12:55:00", 1.5, 3, "500"), ("b", "2018-09-02 00:00:00", 0.0, 1, "7")]
BAD = [("a", "2018-09-01T12:55:00", -1.0, 3, "5.0"), ("a", None, -1.0, 9, "x")]


def _table(db: Path, name: str, rows, amount_type: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(
            f"create table {name} (id text, at text, amount {amount_type}, n int, cents text)"
        )
        conn.executemany(f"insert into {name} values (?, ?, ?, ?, ?)", rows)


@pytest.fixture(scope="module")
def validate(tmp_path_factory):
    db = tmp_path_factory.mktemp("gx") / "t.db"
    _table(db, "good", GOOD, "real")
    _table(db, "bad", BAD, "text")  # a column computed without a cast comes back untyped
    dq_validate._fast_sqlite_regexp()  # the pipeline's SQLite functions, as in a run
    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_sqlite("t", connection_string=f"sqlite:///{db}")
    batches = {
        name: source.add_table_asset(name, table_name=name).add_batch_definition_whole_table(name)
        for name in ("good", "bad")
    }

    def run(expectation, table):
        batch = batches[table].get_batch()
        result = batch.validate(expectation)
        assert not result.exception_info.get("raised_exception"), result.exception_info
        return result.success

    return run


CASES = {
    "ExpectColumnValuesToNotBeNull": lambda: gxe.ExpectColumnValuesToNotBeNull(column="at"),
    "ExpectColumnValuesToBeUnique": lambda: gxe.ExpectColumnValuesToBeUnique(column="id"),
    "ExpectCompoundColumnsToBeUnique": lambda: gxe.ExpectCompoundColumnsToBeUnique(
        column_list=["id", "amount"]
    ),
    "ExpectColumnValuesToBeInTypeList": lambda: gxe.ExpectColumnValuesToBeInTypeList(
        column="amount", type_list=suites.NUMBER
    ),
    "ExpectColumnValuesToBeBetween": lambda: gxe.ExpectColumnValuesToBeBetween(
        column="amount", min_value=0
    ),
    "ExpectColumnValuesToBeInSet": lambda: gxe.ExpectColumnValuesToBeInSet(
        column="n", value_set=[1, 3]
    ),
    "ExpectColumnValuesToMatchRegex": lambda: gxe.ExpectColumnValuesToMatchRegex(
        column="cents", regex="^-?[0-9]+$"
    ),
    "ExpectTableRowCountToBeBetween": lambda: gxe.ExpectTableRowCountToBeBetween(
        min_value=2, max_value=2
    ),
    "UnexpectedRowsExpectation": lambda: suites._canonical("at", "timestamp"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_expectation_passes_good_and_fails_bad_on_sqlite(validate, name):
    good = validate(CASES[name](), "good")
    assert good is True
    if name == "ExpectTableRowCountToBeBetween":
        return  # both tables have two rows; the bound itself is checked below
    assert validate(CASES[name](), "bad") is False


def test_row_count_bound_fails_when_violated(validate):
    assert validate(gxe.ExpectTableRowCountToBeBetween(min_value=3), "good") is False


def test_columns_to_match_ordered_list_on_sqlite(validate):
    ok = gxe.ExpectTableColumnsToMatchOrderedList(column_list=["id", "at", "amount", "n", "cents"])
    assert validate(ok, "good") is True
    wrong = gxe.ExpectTableColumnsToMatchOrderedList(
        column_list=["id", "amount", "at", "n", "cents"]
    )
    assert validate(wrong, "good") is False


def test_every_declared_expectation_type_is_covered_here():
    from dq import validate

    settings = config.for_root(REPO)
    declared = suites.declare(
        load_sources(REPO / "seeds"), validate.marts(settings), validate.features(settings)
    )
    assert "order_features" in declared["transformed"]
    used = {
        type(e).__name__ for layer in declared.values() for exps in layer.values() for e in exps
    }
    covered = set(CASES) | {"ExpectTableColumnsToMatchOrderedList"}
    assert used <= covered, used - covered


def test_gx_holds_no_generated_objects_and_each_run_gets_its_own_context(tmp_path):
    """Suites, validation definitions and checkpoints are generated per run from
    the declarations it checked, in the run's build; nothing tracked under gx/
    is written by a run, and results and Data Docs go to the shared folders."""
    import yaml

    from dq import build as build_mod
    from dq import validate
    from tests.conftest import copy_project

    tracked = {
        str(p.relative_to(REPO / "gx"))
        for p in (REPO / "gx").rglob("*")
        if p.is_file() and "uncommitted" not in p.parts
    }
    assert tracked == {
        ".gitignore",
        "great_expectations.yml",
        "plugins/custom_data_docs/styles/data_docs_custom_styles.css",
    }
    root = copy_project(tmp_path / "project")
    settings = config.for_root(root)
    run = build_mod.create(settings, "ctx-test")
    context = validate.run_context(settings, run)
    assert context.root_directory == str(run.root / "gx")
    written = yaml.safe_load((run.root / "gx" / "great_expectations.yml").read_text())
    stores = written["stores"]
    assert stores["validation_results_store"]["store_backend"]["base_directory"] == str(
        settings.validations_dir
    )
    site = written["data_docs_sites"]["local_site"]["store_backend"]["base_directory"]
    assert site == str(settings.data_docs_dir)
    assert not (root / "gx" / "expectations").exists()


def test_the_clean_layer_gate_holds_every_declared_rule(bundled_run, tmp_path):
    """GX audits what dbt routed: rows that break declared rules, written into a
    copy of the published clean tables behind dbt's back, fail the transformed
    checkpoint, each named by its rule (a range, a custom rule, a reference, a
    value set, a key)."""
    import shutil
    import sqlite3

    from dq import build as build_mod
    from dq import generate, validate
    from tests.conftest import copy_project

    published, _ = bundled_run
    root = copy_project(tmp_path / "project")
    settings = config.for_root(root)
    run = build_mod.create(settings, "tampered")
    build_mod.snapshot_seeds(root / "seeds", run, [p.name for p in (root / "seeds").iterdir()])
    generate.for_build(run)
    shutil.copyfile(published / "warehouse" / "jaffle_shop.db", run.db)
    with sqlite3.connect(run.db) as db:
        db.execute("update stg_stores set tax_rate = 0.5 where rowid = 1")
        db.execute("update stg_orders set order_total = order_total + 1 where rowid = 1")
        db.execute("update stg_items set product_id = 'JAF-999' where rowid = 1")
        db.execute("update stg_products set product_type = 'soup' where rowid = 1")
        db.execute("update stg_customers set customer_id = (select max(customer_id)"
                   " from stg_customers) where rowid = 1")  # fmt: skip
    report = validate.run_checkpoint(settings, run, "transformed", "tampered")
    failed = {s.suite: " | ".join(s.failed_critical) for s in report.suites if not s.success}
    assert set(failed) == {"stg_stores", "stg_orders", "stg_items", "stg_products", "stg_customers"}
    assert "expect_column_values_to_be_between {'column': 'tax_rate'}" in failed["stg_stores"]
    assert "subtotal plus tax_paid is not order_total" in failed["stg_orders"]
    assert "every product_id is a clean products product_id" in failed["stg_items"]
    assert "expect_column_values_to_be_in_set {'column': 'product_type'}" in failed["stg_products"]
    assert "expect_column_values_to_be_unique {'column': 'customer_id'}" in failed["stg_customers"]
