"""How a resource reads its accounts: one after another, or, in a platform's run, many at once with
each account's failure its own (`account_report.py`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .account_report import AccountsReport
from .handoff import Handoff
from .pages import TableRows

# Accounts one resource reads at once. A small account costs a request or two per resource, ~300 ms
# each; with ~20 resources this keeps enough requests waiting for the pacer to use the whole budget.
ACCOUNTS_IN_FLIGHT = 16


class FanOut:
    """How a resource reads its accounts. Isolating (a platform's run): `ACCOUNTS_IN_FLIGHT` at once,
    each on a thread of its own, rows handed to the resource's generator through a bounded queue, and
    an account's failure reported, not raised. Otherwise: one after another on the generator's thread,
    and a failure is the run's."""

    def __init__(self, report: AccountsReport, thread_prefix: str = "", *, isolate: bool = True) -> None:
        self.report = report
        self.thread_prefix = thread_prefix
        self.isolate = isolate

    def rows(self, resource: str, reads: Sequence[Any]) -> Iterator[TableRows]:
        """Rows of every read (`account_read.AccountRead`) of `resource`."""
        if self.isolate:
            yield from self._at_once(resource, reads)
        else:
            for read in reads:
                yield from self._in_turn(resource, read)

    def _in_turn(self, resource: str, read: Any) -> Iterator[TableRows]:
        self.report.start(read.account)
        counted: Counter = Counter()
        try:
            for rows in read.rows():
                counted[rows.table] += rows.count
                yield rows
        except Exception as exc:
            self.report.fail(read.account, resource, exc)
            raise
        self.report.finish(read.account, resource, counted)

    def _at_once(self, resource: str, reads: Sequence[Any]) -> Iterator[TableRows]:
        if not reads:
            return
        handoff = Handoff(2 * ACCOUNTS_IN_FLIGHT, producers=len(reads))

        def read_one(read: Any) -> None:
            account = read.account
            try:
                if handoff.stopped:
                    return
                if self.report.lost_access(account):  # another resource was refused already: no use asking
                    self.report.pass_over(account, resource)
                    return
                self.report.start(account)
                counted: Counter = Counter()
                try:
                    for rows in read.rows():
                        counted[rows.table] += rows.count
                        if not handoff.put(rows):
                            return
                except Exception as exc:  # the account's failure, not the run's
                    self.report.fail(account, resource, exc)
                    return
                self.report.finish(account, resource, counted)
            except BaseException as exc:  # an interrupt (Ctrl-C, SIGTERM): the run's, re-raised where dlt sees it
                handoff.fail(exc)
            finally:
                handoff.done()

        # threads named like dlt's pools see its context (the pipeline's state) as the resource's own thread does
        pool = ThreadPoolExecutor(max_workers=min(ACCOUNTS_IN_FLIGHT, len(reads)),
                                  thread_name_prefix=f"{self.thread_prefix}stripe-{resource}")
        try:
            for read in reads:
                pool.submit(read_one, read)
            yield from handoff.items()
        finally:
            handoff.close()  # also when the reads never started to be consumed
            pool.shutdown(wait=False, cancel_futures=True)
