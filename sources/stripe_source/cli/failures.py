"""Any failure of a command as one line and an exit code; SIGINT and SIGTERM as an interrupted run."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from collections.abc import Iterator
from typing import Any

import stripe
from dlt.common.configuration.exceptions import ConfigFieldMissingException, ConfigurationException
from dlt.common.destination.exceptions import UnknownDestinationModule
from dlt.common.runtime import signals as dlt_signals
from dlt.load.exceptions import LoadClientJobFailed, LoadClientJobTerminalRetry
from dlt.pipeline.exceptions import PipelineStepFailed

from stripe_source.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_LOAD_FAILED,
    EXIT_PERMISSION,
    EXIT_STRIPE_UNAVAILABLE,
    StripeSourceError,
)

SIGNAL_CODES = {EXIT_INTERRUPTED, 128 + signal.SIGTERM}


def interrupted(signum: int) -> tuple[str, int]:
    what = "Interrupted" if signum == signal.SIGINT else f"Terminated ({signal.Signals(signum).name})"
    return (f"{what}: the run stopped before it finished; run `stripe-pipeline run` again to finish "
            "(it completes what this run left pending)"), 128 + signum


@contextlib.contextmanager
def signals_interrupt() -> Iterator[list[int]]:
    """SIGINT and SIGTERM stop the run: raised as KeyboardInterrupt where the main thread is, and
    flagged for dlt, whose steps check the flag between items (a KeyboardInterrupt can land in a
    finalizer, where Python ignores it). A second signal ends the process at once."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield received
        return

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        if len(received) > 1:
            os.write(2, (interrupted(received[0])[0] + "\n").encode())
            os._exit(128 + received[0])
        dlt_signals.set_received_signal(signum)
        dlt_signals.wake_all()
        raise KeyboardInterrupt

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in before:
        signal.signal(sig, on_signal)
    try:
        yield received
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        if received:
            dlt_signals.set_received_signal(0)


def first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        step_exception = getattr(current, "exception", None)  # dlt's PipelineStepFailed
        nested = step_exception if isinstance(step_exception, BaseException) else None
        current = current.__cause__ or nested or current.__context__


def user_error(exc: BaseException) -> tuple[str, int]:
    """Any failure as (one-line message, exit code): ours inside dlt's wrappers first."""
    chain = list(_chain(exc))
    for current in chain:
        if isinstance(current, KeyboardInterrupt):
            signum = getattr(current, "signal_code", signal.SIGINT)  # dlt's SignalReceivedException
            return interrupted(signum if signum in (signal.SIGINT, signal.SIGTERM) else signal.SIGINT)
        if isinstance(current, StripeSourceError):
            return str(current), current.exit_code
        if isinstance(current, stripe.PermissionError):  # a permission taken away during the run
            # Stripe's message echoes part of the key: only the permission it names is shown
            named = re.search(r"'(rak_\w+)'", str(current))
            needs = f" (needs '{named.group(1)}')" if named else ""
            return (f"the Stripe key was refused a read during the run{needs}: grant the permission in the "
                    "Stripe Dashboard and run `stripe-pipeline connect --check`"), EXIT_PERMISSION
    if isinstance(exc, UnknownDestinationModule):
        return (f"unknown destination '{exc.ref}': use duckdb (the default) or a dlt "
                "destination name such as postgres, bigquery, snowflake or filesystem"), EXIT_BAD_INPUT
    if isinstance(exc, ConfigFieldMissingException):
        return (f"{first_line(exc)}: set it in .dlt/secrets.toml or as an environment variable "
                "(see dlt's docs for the destination)"), EXIT_BAD_INPUT
    if isinstance(exc, ConfigurationException):
        return first_line(exc), EXIT_BAD_INPUT
    for current in chain:
        if isinstance(current, LoadClientJobFailed | LoadClientJobTerminalRetry):
            return _failed_load(current), EXIT_LOAD_FAILED
        if type(current).__name__ == "JSONDecodeError":  # a page that is not JSON, parsed after the client
            return (f"Stripe's answer was not valid JSON ({first_line(current)}): check --api-base and any "
                    "proxy in between, then run again"), EXIT_STRIPE_UNAVAILABLE
    root = chain[-1]
    if isinstance(exc, PipelineStepFailed) and exc.step == "load":
        return (f"loading into the destination failed: {_EXCEPTION_LINE.sub('', first_line(root))}: fix what it "
                "names in the destination, then run `stripe-pipeline run` again (it retries this load first)"
                ), EXIT_LOAD_FAILED
    step = f"the {exc.step} step failed: " if isinstance(exc, PipelineStepFailed) else ""
    return (f"{step}{type(root).__name__}: {first_line(root)} (run with STRIPE_PIPELINE_DEBUG=1 for the "
            "traceback)"), EXIT_LOAD_FAILED


def _failed_load(failed: LoadClientJobFailed | LoadClientJobTerminalRetry) -> str:
    """The database's own error from the job's traceback, and what to do about it."""
    lines = [line.strip() for line in str(failed.failed_message).splitlines() if line.strip()]
    errors = [line for line in lines if _EXCEPTION_LINE.match(line)]
    reason = _EXCEPTION_LINE.sub("", errors[-1] if errors else (lines[-1] if lines else "no message"))
    table = failed.job_id.split(".")[0]
    if isinstance(failed, LoadClientJobFailed):  # dlt aborted the package: only a full re-read brings it back
        then = "`stripe-pipeline run --full-refresh`"
    else:
        then = f"`stripe-pipeline run` again (it retries load package {failed.load_id} first)"
    return f"loading table {table} failed: {reason}: fix or drop that table in the destination, then run {then}"


_EXCEPTION_LINE = re.compile(r"^(?:[\w.]+\.)?\w*(?:Error|Exception): ")
