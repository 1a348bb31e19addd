"""`stripe-pipeline run --all-accounts` / `--accounts`: a platform's accounts, one line each, and the
run's summary for orchestrators (`--summary-json`)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from stripe_source.account_report import LOADED, AccountOutcome, AccountsReport
from stripe_source.accounts import ALL
from stripe_source.errors import InvalidInput


def add_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("--all-accounts", action="store_true",
                     help="with the platform's key: load the platform and every connected account (/v1/accounts) "
                          "into one dataset, each with its own cursors")
    run.add_argument("--accounts", metavar="ACCT,ACCT",
                     help="with the platform's key: load these accounts (acct_... ids, comma-separated)")
    run.add_argument("--pace", choices=("platform", "per-account"),
                     help="with --all-accounts/--accounts: one rate budget for every account (platform, the "
                          "default) or one each (per-account)")
    run.add_argument("--summary-json", metavar="FILE",
                     help="write the run's summary there (accounts, tables, rows, requests, seconds, status)")


def accounts_options(args: argparse.Namespace) -> dict[str, Any]:
    """The source's `accounts` and `pace` from the command line; raises `InvalidInput` before any request."""
    if args.all_accounts and args.accounts:
        raise InvalidInput("--all-accounts and --accounts exclude each other: give one of them")
    if args.pace and not (args.all_accounts or args.accounts):
        raise InvalidInput("--pace is for --all-accounts or --accounts: add one of them, or leave --pace out")
    if args.all_accounts:
        return {"accounts": ALL, "pace": args.pace}
    if args.accounts is not None:
        if not args.accounts.strip():
            raise InvalidInput("--accounts is empty: give acct_... ids separated by commas, or use --all-accounts")
        return {"accounts": args.accounts, "pace": args.pace}
    return {}


def check_summary_path(value: str | None) -> Path | None:
    """Fail before any request when the summary could not be written."""
    if value is None:
        return None
    path = Path(value).resolve()
    if path.is_dir():
        raise InvalidInput(f"--summary-json {value} is a directory: give a file name, e.g. {path / 'summary.json'}")
    if not path.parent.is_dir():
        raise InvalidInput(f"--summary-json {value}: the directory {path.parent} does not exist: create it first")
    if not os.access(path.parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InvalidInput(f"--summary-json {value} cannot be written: give a writable path")
    return path


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """Atomically: an orchestrator polling the file never reads half of it."""
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=f".{path.name}.", delete=False) as out:
        out.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(out.name, path)


class ProgressLines:
    """One line per account as it ends: `[ 12/1,001] acct_...  loaded  1,234 rows  25 requests  3.1 s`."""

    def __init__(self, report: AccountsReport) -> None:
        self.report = report
        self.done = 0
        self._lock = threading.Lock()

    def __call__(self, outcome: AccountOutcome) -> None:
        if not self.report.platform:  # one account: its outcome is the run's
            return
        with self._lock:
            self.done += 1
            total = len(self.report.outcomes)
            width = len(f"{total:,}")
            head = f"[{self.done:>{width},}/{total:,}] {outcome.account}  {outcome.status:<7}"
            if outcome.status == LOADED:
                line = (f"{head} {sum(outcome.rows.values()):>9,} rows {outcome.requests:>6,} requests "
                        f"{outcome.seconds:>7.1f} s")
            else:
                line = f"{head} {outcome.error} (retried next run)"
            sys.stdout.write(line + "\n")
            sys.stdout.flush()


def print_accounts_summary(report: AccountsReport) -> None:
    statuses = Counter(outcome.status for outcome in report.outcomes.values())
    parts = [f"{n:,} {status}" for status, n in sorted(statuses.items(), key=lambda item: item[0] != LOADED)]
    skipped = f"; {len(report.skipped):,} skipped (no longer connected)" if report.skipped else ""
    print(f"\n{len(report.outcomes):,} accounts: {', '.join(parts)}{skipped}")
    for outcome in report.outcomes.values():
        if outcome.status != LOADED:
            print(f"  {outcome.account}  {outcome.status}: {outcome.error}")
    for account, reason in report.skipped.items():
        print(f"  {account}  skipped: {reason}")


def failed_accounts_line(report: AccountsReport) -> str:
    """The run's one error line when accounts failed: how many, which (the first few) and why."""
    failed = [o for o in report.outcomes.values() if o.status != LOADED]
    named = "; ".join(f"{o.account} {o.status}: {o.error}" for o in failed[:3])
    more = f"; and {len(failed) - 3:,} more" if len(failed) > 3 else ""
    return (f"{len(failed):,} of {len(report.outcomes):,} accounts did not load ({named}{more}): the lines above "
            "say why; the next run retries them")
