"""Flattened pages load exactly what dlt's own normalizer loads.

The same pages go through dlt's default path (`with_hints(rows, hints)`) and through our route
(digested here or in a worker process, gathered by `TableBatches`) into two DuckDB files; every
table is compared column by column (names and DuckDB types) and row by row, with `_dlt_id`s
replaced by a stable path so the parent/child/root linkage is compared too.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import duckdb
import orjson
import pytest

from stripe_source.dlt_fixes import JsonAsTextIsByDesign, install_nested_metrics_fallback
from stripe_source.flatten import FlattenUnsupported, flatten
from stripe_source.items import RunTables, TableBatches, plan_for
from stripe_source.pages import Digester, PageJob, _shaped
from stripe_source.workers import WorkerPool

MERGE = {"disposition": "merge", "strategy": "delete-insert"}


def hints(table: str, disposition: Any = MERGE, timestamps: tuple[str, ...] = ("created",)) -> Any:
    """Hints shaped like `table_hints()` in the source."""
    columns: dict[str, dict[str, Any]] = {name: {"data_type": "timestamp"} for name in timestamps}
    columns["stripe_account_id"] = {"data_type": "text"}
    columns["metadata"] = {"data_type": "json"}
    if disposition == MERGE:
        columns["deleted"] = {"data_type": "bool", "hard_delete": True}
    return dlt.mark.make_hints(table_name=table, primary_key="id", write_disposition=disposition, columns=columns)


def invoice(n: int, **overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": f"in_{n}",
        "object": "invoice",
        "amount_due": 1000 + n,
        "created": 1700000000 + n,
        "due_date": None if n % 2 else 1700100000 + n,
        "paid": bool(n % 2),
        "tax_percent": 7.5,
        "metadata": {"order": str(n), "nested": {"a": [1, 2]}} if n % 3 else {},
        "status_transitions": {"finalized_at": 1700000500 + n, "paid_at": None},
        "customer_address": {"city": "Berlin", "line1": None} if n % 2 else None,
        "discounts": [f"di_{n}_a", f"di_{n}_b"] if n % 2 else [],
        "total_tax_amounts": [
            {"amount": 10 * n, "inclusive": False, "tax_rate": {"id": "txr_1", "percentage": 19.0}},
            {"amount": 5, "inclusive": True, "tax_rate": None, "jurisdictions": ["DE", "EU"]},
        ],
        "custom_fields": None,
        "account_tax_ids": [["a", "b"], ["c"]] if n == 1 else None,
        "stripe_account_id": "acct_1",
    }
    if n % 4 == 0:
        del obj["customer_address"]  # missing key
    obj.update(overrides)
    return obj


@pytest.fixture(autouse=True)
def nested_metrics_fallback() -> None:
    install_nested_metrics_fallback()  # as a run of the source does (see test_dlt_fixes.py)


@pytest.fixture(scope="module")
def flatten_pool() -> Iterator[Any]:
    pool = WorkerPool(1)
    assert pool.started
    yield pool
    pool.close()


def run(pages: list[tuple[str, list[dict], Any]], mode: bool | str, db: Path, name: str, pool: Any = None) -> None:
    """Load `pages` (table, rows, hints): `mode` False through dlt's normalizer; "digest" as the source
    reads a list page (raw JSON, digested here or in `pool`); otherwise as rows made in-process."""

    run_tables = RunTables()

    def items() -> Iterator[Any]:
        plans: dict[str, Any] = {}
        digester = Digester(plans, pool)
        batches = TableBatches(run_tables, "stripe_pages", max_objects=4)
        for table, rows, table_hints in pages:
            rows = copy.deepcopy(rows)
            if not mode:
                yield dlt.mark.with_hints(rows, table_hints, create_table_variant=True)
                continue
            plans[table] = plan_for(table, table_hints)
            if mode == "digest":
                digest = digester.digest(orjson.dumps({"data": rows, "has_more": False}), PageJob(table, "acct_1"))
                for table_rows in digest.tables.values():
                    yield from batches.add(table_rows, table_hints)
            else:
                yield from batches.add(digester.table_rows(table, rows), table_hints)
        yield from batches.flush()

    pipeline = dlt.pipeline(
        name, destination=dlt.destinations.duckdb(str(db)), dataset_name="stripe",
        pipelines_dir=str(db.parent / "pipelines"),
    )
    log_filter = JsonAsTextIsByDesign(run_tables.json_as_text)  # as a run of the source holds it
    logging.getLogger("dlt").addFilter(log_filter)
    try:
        info = pipeline.run(dlt.resource(items, name="stripe_pages"), loader_file_format="parquet")
    finally:
        logging.getLogger("dlt").removeFilter(log_filter)
    info.raise_on_failed_jobs()


def dump(db: Path) -> dict[str, Any]:
    """Every data table as {columns: {name: type}, rows: sorted rows with ids replaced by paths}."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema='stripe' "
                "and table_name not like '_dlt%' order by 1"
            ).fetchall()
        ]
        out: dict[str, Any] = {}
        paths: dict[str, str] = {}  # _dlt_id -> stable path: object id, then parent path/table/idx
        for table in sorted(names, key=lambda n: n.count("__")):  # parents before children
            cols = dict(
                con.execute(
                    "select column_name, data_type from information_schema.columns "
                    "where table_schema='stripe' and table_name=? ",
                    [table],
                ).fetchall()
            )
            cur = con.execute(f'select * from stripe."{table}"')
            header = [d[0] for d in cur.description]
            rows = []
            for values in cur.fetchall():
                row = dict(zip(header, values, strict=True))
                if "_dlt_parent_id" in row:
                    path = f"{paths[row['_dlt_parent_id']]}/{table}/{row['_dlt_list_idx']}"
                    row["_dlt_parent_id"] = paths[row["_dlt_parent_id"]]
                    if "_dlt_root_id" in row:
                        row["_dlt_root_id"] = paths[row["_dlt_root_id"]]
                else:
                    path = row["id"]
                    assert row.pop("_dlt_load_id")  # set on every root row
                paths[row.pop("_dlt_id")] = path
                rows.append(tuple(sorted((k, repr(v)) for k, v in row.items())))
            out[table] = {"columns": cols, "rows": sorted(rows)}
        return out
    finally:
        con.close()


def assert_same(
    tmp_path: Path, runs: list[list[tuple[str, list[dict], Any]]], fast: bool | str = "rows", pool: Any = None
) -> dict[str, Any]:
    for mode in (False, fast):
        db = tmp_path / f"{'fast' if mode else 'dlt'}.duckdb"
        for pages in runs:
            run(pages, mode, db, f"eq_{'fast' if mode else 'dlt'}", pool if mode else None)
    expected, actual = dump(tmp_path / "dlt.duckdb"), dump(tmp_path / "fast.duckdb")
    assert set(actual) == set(expected)
    for table in expected:
        assert actual[table]["columns"] == expected[table]["columns"], table
        assert actual[table]["rows"] == expected[table]["rows"], table
    return actual


TS = ("created", "due_date", "status_transitions__finalized_at", "status_transitions__paid_at")


def test_nested_shapes_types_and_linkage(tmp_path: Path) -> None:
    page1 = [invoice(n) for n in range(1, 7)]
    page2 = [invoice(n, custom_fields=[{"name": "po", "value": "123"}]) for n in range(7, 10)]
    tables = assert_same(tmp_path, [[("invoices", page1, hints("invoices", timestamps=TS)),
                                     ("invoices", page2, hints("invoices", timestamps=TS))]])
    cols = tables["invoices"]["columns"]
    assert cols["created"] == "TIMESTAMP WITH TIME ZONE"
    assert cols["status_transitions__finalized_at"] == "TIMESTAMP WITH TIME ZONE"
    assert cols["metadata"] == "JSON"
    assert cols["customer_address__city"] == "VARCHAR"
    assert "status_transitions__paid_at" in cols  # hinted: created though always null
    assert {"invoices__discounts", "invoices__total_tax_amounts", "invoices__custom_fields",
            "invoices__total_tax_amounts__jurisdictions", "invoices__account_tax_ids",
            "invoices__account_tax_ids__list"} <= set(tables)  # page 1 via dlt (list of lists)
    assert "_dlt_root_id" in tables["invoices__total_tax_amounts__jurisdictions"]["columns"]


def test_merge_update_with_fewer_items_and_hard_delete(tmp_path: Path) -> None:
    first = [invoice(n) for n in range(1, 5)]
    updated = invoice(1, amount_due=1, total_tax_amounts=[{"amount": 1, "inclusive": True}], discounts=[])
    tombstone = {"id": "in_2", "object": "invoice", "deleted": True}
    h = hints("invoices", timestamps=TS)
    tables = assert_same(tmp_path, [[("invoices", first, h)], [("invoices", [updated, tombstone], h)]])
    ids = {dict(r)["id"] for r in tables["invoices"]["rows"]}
    assert ids == {"'in_1'", "'in_3'", "'in_4'"}
    assert sum(dict(r)["_dlt_parent_id"] == "'in_1'" for r in tables["invoices__total_tax_amounts"]["rows"]) == 1


@pytest.mark.parametrize("pooled", [False, True], ids=["in_process", "worker_process"])
def test_buffered_pages_across_runs(tmp_path: Path, pooled: bool, flatten_pool: Any) -> None:
    # ArrowBuffer converts several pages at once (in a worker process, or here); a merge run and
    # a tombstone on top
    h = hints("invoices", timestamps=TS)
    first = [("invoices", [invoice(n) for n in range(k, k + 3)], h) for k in (2, 5, 8, 11)]
    second = [("invoices", [invoice(5, discounts=["d"]), {"id": "in_6", "created": 6, "deleted": True}], h)]
    assert_same(tmp_path, [first, second], fast="digest", pool=flatten_pool if pooled else None)


def test_schema_evolution_new_field_and_null_becomes_typed(tmp_path: Path) -> None:
    page1 = [{"id": "cus_1", "created": 1700000000, "email": None, "address": None, "metadata": {}}]
    page2 = [{"id": "cus_2", "created": 1700000001, "email": "a@b.c", "address": {"city": "X"},
              "new_field": 3, "preferred_locales": ["en", "de"], "metadata": {"k": "v"}}]
    h = hints("customers")
    tables = assert_same(tmp_path, [[("customers", page1, h)], [("customers", page2, h)]])
    assert tables["customers"]["columns"]["email"] == "VARCHAR"
    assert tables["customers"]["columns"]["new_field"] == "BIGINT"


def test_replace_and_heterogeneous_objects(tmp_path: Path) -> None:
    # a field sometimes null, sometimes a dict, sometimes missing; an int-valued double
    rows = [
        {"id": "ch_1", "created": 1, "outcome": None, "fee": 1.5, "refunds": {"data": [], "has_more": False}},
        {"id": "ch_2", "created": 2, "outcome": {"type": "authorized", "rule": {"id": "r"}}, "fee": 2},
        {"id": "ch_3", "created": 3, "payment_method_details": {"card": {"checks": {"cvc": "pass"}}}},
    ]
    assert_same(tmp_path, [[("charges", rows, hints("charges", disposition="replace"))]])


def test_pages_the_fast_path_leaves_to_dlt(tmp_path: Path) -> None:
    mixed = [{"id": "x_1", "created": 1, "amount": 1}, {"id": "x_2", "created": 2, "amount": "many"}]
    int_then_float = [{"id": "x_3", "created": 3, "rate": 1}, {"id": "x_4", "created": 4, "rate": 1.5}]
    iso = [{"id": "x_5", "created": 5, "when": "2024-01-01T00:00:00Z"}]
    for page in (mixed, int_then_float, iso):
        with pytest.raises(FlattenUnsupported):
            flatten(plan_for("things", hints("things")), page)
    h = hints("things")
    later = [{"id": "x_6", "created": 6, "amount": 7, "rate": 2.5}]  # arrow page after dlt's pages
    pages = [("things", mixed, h), ("things", int_then_float, h), ("things", iso, h), ("things", later, h)]
    assert_same(tmp_path, [pages])


def test_worker_process_leaves_unsupported_pages_to_dlt(tmp_path: Path, flatten_pool: Any) -> None:
    h = hints("customers")
    fine = [{"id": f"cus_{n}", "object": "customer", "created": n, "balance": n} for n in range(4)]
    mixed = [{"id": f"cus_{n}", "object": "customer", "created": n, "balance": 1 if n % 2 else "many"}
             for n in range(8, 12)]
    later = [{"id": "cus_12", "object": "customer", "created": 12, "balance": 7}]  # after dlt's pages: stays there
    shaped = [(t, _shaped(orjson.dumps({"data": rows, "has_more": False}), PageJob(t, "acct_1"))[1][t], x)
              for t, rows, x in [("customers", fine, h), ("customers", mixed, h), ("customers", later, h)]]
    run(shaped, False, tmp_path / "dlt.duckdb", "eq_dlt")
    run([("customers", fine, h), ("customers", mixed, h), ("customers", later, h)], "digest",
        tmp_path / "fast.duckdb", "eq_fast", flatten_pool)
    assert dump(tmp_path / "fast.duckdb") == dump(tmp_path / "dlt.duckdb")


@pytest.mark.parametrize("pooled", [False, True], ids=["in_process", "worker_process"])
def test_digested_pages_and_a_page_whose_types_clash(tmp_path: Path, pooled: bool, flatten_pool: Any) -> None:
    # Pages digested one by one (in a worker, its tables back as Arrow IPC) are concatenated per
    # table; the page whose `balance` turns text, and every page after it, go to dlt's normalizer,
    # shaped again from the raw page the extracting process kept.
    h = hints("customers")
    fine = [{"id": f"cus_{n}", "object": "customer", "created": n, "balance": n, "address": {"city": "B"}}
            for n in range(3)]
    clash = [{"id": "cus_8", "object": "customer", "created": 8, "balance": "many"}]
    later = [{"id": "cus_9", "object": "customer", "created": 9, "balance": 2, "preferred_locales": ["de"]}]
    pages = [("customers", fine, h), ("customers", clash, h), ("customers", later, h)]
    for mode in (False, "digest"):  # the reference gets the rows shaped as the source shapes them
        db = tmp_path / f"{'fast' if mode else 'dlt'}.duckdb"
        shaped = [(t, _shaped(orjson.dumps({"data": rows, "has_more": False}), PageJob(t, "acct_1"))[1][t], x)
                  for t, rows, x in pages] if not mode else pages
        run(shaped, mode, db, f"eq_{'fast' if mode else 'dlt'}", flatten_pool if pooled and mode else None)
    expected, actual = dump(tmp_path / "dlt.duckdb"), dump(tmp_path / "fast.duckdb")
    assert actual == expected
    assert len(actual["customers"]["rows"]) == 5 and "customers__preferred_locales" in actual
    assert actual["customers"]["columns"]["balance"] == "BIGINT"
    assert "balance__v_text" in actual["customers"]["columns"]  # dlt's variant column for the clash


def test_arrow_items_give_dlt_nothing_to_warn_about(tmp_path: Path) -> None:
    # dlt compares every Arrow item's schema with the table hints and warns per item where they
    # differ: the ids and keys must be NOT NULL in Arrow too, and JSON carried as text (by design)
    # must not flood the log of an unattended run
    dlt.pipeline("warn_init", pipelines_dir=str(tmp_path / "pipelines"))  # dlt sets up its logger once
    dlt_logger = logging.getLogger("dlt")
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    level = dlt_logger.level
    dlt_logger.addHandler(handler)
    dlt_logger.setLevel(logging.INFO)
    try:
        pages = [("invoices", [invoice(n) for n in range(2, 6)], hints("invoices", timestamps=TS))]
        run(pages, "rows", tmp_path / "fast.duckdb", "warn_fast")
        run(pages, "digest", tmp_path / "digest.duckdb", "warn_digest")
    finally:
        dlt_logger.removeHandler(handler)
        dlt_logger.setLevel(level)
    differences = {r.getMessage().split(" on column ")[1].split(". The hint")[0]
                   for r in records if "when merging arrow schema on column" in r.getMessage()}
    assert differences == {"metadata"}  # json hint, JSON text in Arrow: the one difference by design
    assert not [r for r in records if r.levelno >= logging.WARNING and "column hints were different" in r.getMessage()]


def test_events_insert_only_with_json_data(tmp_path: Path) -> None:
    def event(n: int) -> dict[str, Any]:
        return {"id": f"evt_{n}", "object": "event", "type": "invoice.paid", "created": n,
                "data": {"object": {"id": "in_1", "lines": {"data": [{"id": "il_1"}]}}},
                "request": {"id": None, "idempotency_key": None}, "pending_webhooks": 0}

    h = dlt.mark.make_hints(
        table_name="events", primary_key="id",
        write_disposition={"disposition": "merge", "strategy": "insert-only"},
        columns={"created": {"data_type": "timestamp"}, "data": {"data_type": "json"},
                 "metadata": {"data_type": "json"}, "stripe_account_id": {"data_type": "text"}},
    )
    assert_same(tmp_path, [[("events", [event(1), event(2)], h)], [("events", [event(2), event(3)], h)]])


