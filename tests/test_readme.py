"""The README's library example, run verbatim in a clean directory against the emulator."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

from stripe_source.cli.commands import PIPELINE_NAME
from tests.helpers import ids

README = Path(__file__).parents[1] / "README.md"


def library_example() -> str:
    text = README.read_text()
    found = re.search(r"As a library:\s*```python\n(.*?)```", text, flags=re.S)
    assert found, "README has no library example"
    return found.group(1)


def test_the_library_example_works_in_a_clean_directory(emulator, tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "example.py").write_text(library_example())
    env = {k: v for k, v in os.environ.items() if k not in ("DLT_PROJECT_DIR", "DLT_LOCAL_DIR")}
    # how a user points the source at a Stripe (here the emulator) without code changes
    env.update(STRIPE_API_KEY=emulator.api_key, STRIPE_API_BASE=emulator.api_base)
    done = subprocess.run([sys.executable, "example.py"], cwd=clean, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (db,) = clean.glob("*.duckdb")
    since = int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp())
    expected = {c["id"] for c in emulator.objects("charges") if c["created"] >= since}
    assert expected and set(ids(db, "charges")) == expected
    # not the CLI's pipeline: its state, working dir and pending packages stay the CLI's own
    pipelines = Path(os.environ["DLT_DATA_DIR"]) / "pipelines"
    assert pipelines.is_dir() and not (pipelines / PIPELINE_NAME).exists()
