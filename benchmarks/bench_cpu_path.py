"""CPU path benchmark: Stripe-shaped pages into DuckDB, dlt's default normalizer vs the Arrow fast path.

    .venv/bin/python benchmarks/bench_cpu_path.py [--objects 100000] [--disposition merge|append]

Objects are made from Stripe's example objects (charge, invoice without lines, customer,
subscription without items) with varied ids, `created` and amounts, kept as JSON pages of 100 so
extract includes the orjson parse the source does. Each design runs in its own process (clean
peak RSS) into its own DuckDB file; per-stage times come from `pipeline.last_trace`.
Designs:
  dlt            dlt's normalizer, parquet loader files (dlt's insert_values default is far slower)
  dlt_2workers   the same + NORMALIZE__WORKERS=2 and extract file rotation (normalize in parallel)
  arrow_page     the source's route, one Arrow item per page of 100 (digested in-process, flattened
                 into Arrow root + nested tables)
  arrow          the same gathered by `TableBatches` (5,000 objects per item): the source's default
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path("/work/shared/stripe-reference/fixtures3.json")
TEMPLATES = {"charges": "charge", "invoices": "invoice", "customers": "customer", "subscriptions": "subscription"}
SUB_LISTS = {"invoices": "lines", "subscriptions": "items"}  # the source pages these into own tables
DESIGNS = ("dlt", "dlt_2workers", "arrow_page", "arrow")
PAGE = 100


def make_pages(n: int) -> dict[str, list[bytes]]:
    import orjson

    fixtures = json.loads(FIXTURES.read_text())["resources"]
    per_table = n // len(TEMPLATES)
    pages: dict[str, list[bytes]] = {}
    for table, name in TEMPLATES.items():
        template = dict(fixtures[name])
        template.pop(SUB_LISTS.get(table, ""), None)
        rows = []
        for i in range(per_table):
            obj = json.loads(json.dumps(template))
            obj["id"] = f"{template['id']}_{i}"
            obj["created"] = 1700000000 + i
            obj["stripe_account_id"] = "acct_bench"
            obj["metadata"] = {"order": str(i)} if i % 2 else {}
            for key in ("amount", "amount_due", "amount_paid", "total", "balance"):
                if isinstance(obj.get(key), int):
                    obj[key] = obj[key] + i
            rows.append(obj)
        pages[table] = [orjson.dumps(rows[i : i + PAGE]) for i in range(0, len(rows), PAGE)]
    return pages


def run_design(design: str, n: int, disposition: str, workdir: Path) -> dict:
    import dlt
    import orjson

    from stripe_source.catalog import BY_TABLE
    from stripe_source.dlt_fixes import install_nested_metrics_fallback
    from stripe_source.items import RunTables, TableBatches, plan_for
    from stripe_source.pages import Digester
    from stripe_source.resource import table_hints

    install_nested_metrics_fallback()

    pages = make_pages(n)
    if design == "dlt_2workers":
        os.environ["NORMALIZE__WORKERS"] = "2"
        os.environ["SOURCES__DATA_WRITER__FILE_MAX_ITEMS"] = str(max(n // 8, 1000))

    def resource_for(table: str):  # noqa: ANN202
        hints = table_hints(BY_TABLE[table], disposition)

        def read():  # noqa: ANN202
            digester = Digester({table: plan_for(table, hints)})
            batches = TableBatches(RunTables(), table, max_objects=PAGE if design == "arrow_page" else 5000)
            for page in pages[table]:
                rows = orjson.loads(page)
                if design.startswith("arrow"):
                    yield from batches.add(digester.table_rows(table, rows), hints)
                else:
                    yield dlt.mark.with_hints(rows, hints, create_table_variant=True)
            yield from batches.flush()

        return dlt.resource(read, name=table, table_name=table)

    @dlt.source(name="stripe")
    def source():  # noqa: ANN202
        return [resource_for(t) for t in TEMPLATES]

    pipeline = dlt.pipeline(
        f"bench_{design}",
        destination=dlt.destinations.duckdb(str(workdir / f"{design}.duckdb"), preferred_loader_file_format="parquet"),
        dataset_name="stripe",
        pipelines_dir=str(workdir / "pipelines"),
    )
    started = time.perf_counter()
    info = pipeline.run(source())
    wall = time.perf_counter() - started
    info.raise_on_failed_jobs()
    steps = {s.step: (s.finished_at - s.started_at).total_seconds() for s in pipeline.last_trace.steps}
    rows = pipeline.last_trace.last_normalize_info.row_counts
    with pipeline.sql_client() as client:
        loaded = client.execute_sql("select count(*) from invoices")[0][0]
    peak = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    objects = (n // len(TEMPLATES)) * len(TEMPLATES)
    return {
        "design": design,
        "objects": objects,
        "rows": sum(v for k, v in rows.items() if not k.startswith("_dlt")),
        "tables": len([k for k in rows if not k.startswith("_dlt")]),
        "wall": wall,
        "extract": steps.get("extract", 0.0),
        "normalize": steps.get("normalize", 0.0),
        "load": steps.get("load", 0.0),
        "peak_rss_mb": peak / 1024,
        "invoices_loaded": loaded,
    }


def run_isolated(design: str, n: int, disposition: str, workdir: Path) -> dict:
    """`run_design` in a process of its own (a clean peak RSS)."""
    env = dict(os.environ, RUNTIME__DLTHUB_TELEMETRY="false", PYTHONPATH=str(ROOT / "sources"))
    out = subprocess.run(
        [sys.executable, __file__, "--design", design, "--objects", str(n), "--disposition", disposition,
         "--workdir", str(workdir)],
        env=env, capture_output=True, text=True, check=False,
    )
    if out.returncode:
        print(out.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{design} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--disposition", choices=("merge", "append"), default="merge")
    parser.add_argument("--designs", default=",".join(DESIGNS))
    parser.add_argument("--design", help=argparse.SUPPRESS)  # child process mode
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.design:
        print(json.dumps(run_design(args.design, args.objects, args.disposition, Path(args.workdir))))
        return

    with tempfile.TemporaryDirectory(prefix="bench_cpu_") as tmp:
        results = [run_isolated(design, args.objects, args.disposition, Path(tmp))
                   for design in args.designs.split(",")]

    base = next((r for r in results if r["design"] == "dlt"), results[0])
    print(f"CPU path, {results[0]['objects']:,} Stripe objects ({', '.join(TEMPLATES)}), "
          f"{args.disposition}, DuckDB parquet, {os.cpu_count()} CPUs")
    header = f"{'design':<14}{'obj/s':>9}{'vs dlt':>8}{'wall s':>8}{'extract':>9}{'normalize':>10}{'load':>7}"
    header += f"{'ext obj/s':>11}{'norm obj/s':>11}{'rows':>9}{'peak MB':>9}"
    print(header)
    for r in results:
        rate = r["objects"] / r["wall"]
        print(
            f"{r['design']:<14}{rate:>9,.0f}{rate / (base['objects'] / base['wall']):>7.1f}x{r['wall']:>8.1f}"
            f"{r['extract']:>9.1f}{r['normalize']:>10.1f}{r['load']:>7.1f}"
            f"{r['objects'] / max(r['extract'], 1e-9):>11,.0f}{r['objects'] / max(r['normalize'], 1e-9):>11,.0f}"
            f"{r['rows']:>9,}{r['peak_rss_mb']:>9,.0f}"
        )


if __name__ == "__main__":
    main()
