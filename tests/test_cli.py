"""The command line: every bad value is one line on stderr, exit 2, before any request to Stripe;
no message ever carries a key."""

from __future__ import annotations

import pytest

from stripe_source.cli.commands import main
from stripe_source.errors import EXIT_BAD_INPUT
from tests.helpers import ids, run_pipeline


def one_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--start-date", "99999999999999999999"), "start_date '99999999999999999999' is out of range"),
        (("--end-date", "3000-01-01"), "end_date 3000-01-01T00:00:00+00:00 is in the future"),
        (("--max-rps", "1e-9"), "max_requests_per_second must be a number above 0 (from 0.1 to 100000)"),
        (("--max-rps", "1e-12"), "max_requests_per_second must be a number above 0 (from 0.1 to 100000)"),
        (("--max-rps-per-endpoint", "1e-9"), "max_requests_per_endpoint must be a number above 0 (from 0.1 to"),
        (("--max-rps", "nan"), "max_requests_per_second must be a number above 0 (from 0.1 to 100000)"),
        (("--workers", "100000000"), "workers must be a whole number of at least 1 and at most 256"),
        (("--flatten-processes", "100000"), "flatten_processes must be a whole number of at least 0 and at most 64"),
        (("--lookback-seconds", "99999999999"),
         "lookback_seconds must be a whole number of at least 0 and at most 2592000"),
        (("--pipeline-name", "../../escape"), "--pipeline-name '../../escape' is not a pipeline name"),
        (("--pipeline-name", "a/b"), "--pipeline-name 'a/b' is not a pipeline name"),
        (("--pipeline-name", "."), "--pipeline-name '.' is not a pipeline name"),
        (("--pipeline-name", ".."), "--pipeline-name '..' is not a pipeline name"),
        (("--pipeline-name", "p" * 300), "is not a pipeline name"),
        (("--api-base", "http://[::1"), "api_base 'http://[::1' is not a URL"),
        (("--api-base", "https://api.stripe.com/v1"), "api_base 'https://api.stripe.com/v1' ends in /v1"),
        (("--api-base", "ftp://example.com"), "api_base 'ftp://example.com' is not an http(s) URL"),
        (("--api-base", "http://127.0.0.1:99999"), "api_base 'http://127.0.0.1:99999' is not a URL"),
    ],
)
def test_bad_values_are_one_line_exit_2_before_any_request(emulator, monkeypatch, tmp_path, capsys, args, message):
    emulator.reset_stats()
    db = tmp_path / "bad.duckdb"
    # --api-base given last wins over the helper's
    assert run_pipeline(emulator, monkeypatch, db, *args) == EXIT_BAD_INPUT
    line = one_line(capsys)
    assert message in line and line.startswith("Error: ")
    assert emulator.stats()["requests_total"] == 0
    assert not db.exists()


def test_abbreviated_options_are_not_taken_for_others(emulator, monkeypatch, tmp_path, capsys):
    # `--start` must not quietly become `--start-date`
    with pytest.raises(SystemExit) as exit_:
        run_pipeline(emulator, monkeypatch, tmp_path / "x.duckdb", "--start", "2024-01-01")
    assert exit_.value.code == EXIT_BAD_INPUT
    assert "unrecognized arguments: --start" in capsys.readouterr().err


@pytest.mark.parametrize(
    "key",
    ["sk_test_caf\u00e9\u0142x9", "sk_test_abc def123", "sk_test_\u2603snowman42"],
)
def test_a_key_with_characters_no_stripe_key_has(emulator, monkeypatch, tmp_path, capsys, key):
    emulator.reset_stats()
    assert run_pipeline(emulator, monkeypatch, tmp_path / "k.duckdb", key=key) == EXIT_BAD_INPUT
    line = one_line(capsys)
    assert "characters a Stripe key never has" in line
    assert key not in line and key.split("_")[-1] not in line
    assert emulator.stats()["requests_total"] == 0


def test_credentials_of_the_wrong_type_in_secrets_toml(emulator, dlt_project, monkeypatch, tmp_path, capsys):
    from stripe_source.connection import _reload_dlt_providers

    (dlt_project / ".dlt" / "secrets.toml").write_text("[sources.stripe]\ncredentials = 123\n")
    _reload_dlt_providers()
    emulator.reset_stats()
    assert main(["run", "--api-base", emulator.api_base, "--duckdb-path", str(tmp_path / "c.duckdb")]) == 2
    assert "credentials" in one_line(capsys)
    assert emulator.stats()["requests_total"] == 0


def test_a_key_with_a_trailing_newline_works_and_is_never_echoed(emulator, monkeypatch, tmp_path, capsys):
    # as `export SOURCES__STRIPE__CREDENTIALS__API_KEY="$(cat key.txt)"` or a secret store may give it
    monkeypatch.setenv("SOURCES__STRIPE__CREDENTIALS__API_KEY", emulator.api_key + "\n")
    db = tmp_path / "nl.duckdb"
    args = ["run", "--api-base", emulator.api_base, "--duckdb-path", str(db), "--resources", "customers"]
    assert main(args) == 0
    out = capsys.readouterr()
    assert emulator.api_key not in out.out + out.err
    assert set(ids(db, "customers")) == {c["id"] for c in emulator.objects("customers")}


def test_a_bad_key_with_a_trailing_newline_is_masked(emulator, monkeypatch, tmp_path, capsys):
    key = "sk_test_NotIssued" + "Zq81Lm42Xy"
    monkeypatch.setenv("SOURCES__STRIPE__CREDENTIALS__API_KEY", key + "\r\n")
    code = main(["run", "--api-base", emulator.api_base, "--duckdb-path", str(tmp_path / "m.duckdb")])
    assert code == 3
    out = capsys.readouterr()
    assert key not in out.out + out.err and "Zq81Lm42Xy" not in out.out + out.err


def test_no_message_can_print_a_key():
    from stripe_source.cli.redaction import redact

    fake_live = "sk_" + "live_" + "51HxAbCdEfGhIjKlMnOpQrStUv"  # assembled: no live-looking key in the repo
    line = f"header value 'Bearer {fake_live}\\n' and rk_test_9xY8wV7uT6sR5qP4 and whsec_abc"
    shown = redact(line)
    assert "51HxAbCdEfGhIjKlMnOpQrSt" not in shown and "9xY8wV7uT6sR" not in shown
    assert "sk_live_****" in shown and "rk_test_****" in shown


def test_a_log_line_cannot_carry_a_key(monkeypatch, capsys, caplog):
    import logging

    key = "sk_live_" + "LoggedByMistake77Ab12"

    def leaky_run(args) -> int:  # any library on the way logging a header or a URL it should not
        logging.getLogger("somewhere").warning("retrying with %s", key)
        return 0

    monkeypatch.setattr("stripe_source.cli.commands.cmd_run", leaky_run)
    assert main(["run"]) == 0
    shown = capsys.readouterr().err + caplog.text
    assert key not in shown and "sk_live_****Ab12" in shown


def test_resources_from_the_environment_as_a_comma_separated_list(emulator, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SOURCES__STRIPE__RESOURCES", "customers,coupons")
    db = tmp_path / "env.duckdb"
    assert run_pipeline(emulator, monkeypatch, db) == 0
    assert set(ids(db, "customers")) == {c["id"] for c in emulator.objects("customers")}
    assert set(ids(db, "coupons")) == {c["id"] for c in emulator.objects("coupons")}
    from tests.helpers import tables

    assert "charges" not in tables(db)


def test_a_destination_that_cannot_merge_is_refused(emulator, monkeypatch, tmp_path, capsys):
    # plain files append: after an update and a delete, customers held 82 rows for 80 ids
    bucket = tmp_path / "bucket"
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", bucket.as_uri())
    emulator.reset_stats()
    assert run_pipeline(emulator, monkeypatch, tmp_path / "unused.duckdb", "--destination", "filesystem") == 2
    line = one_line(capsys)
    assert "the filesystem destination writes plain files, which cannot merge updates and deletes" in line
    assert "load into duckdb (the default) or a warehouse" in line
    assert emulator.stats()["requests_total"] == 0
    assert not bucket.exists() or not any(bucket.rglob("*.*"))


def test_version_names_the_package_the_api_version_and_dlt(capsys):
    import dlt

    from stripe_source import API_VERSION, __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    expected = f"stripe-pipeline {__version__} (Stripe API {API_VERSION}, dlt {dlt.__version__})"
    assert capsys.readouterr().out.strip() == expected
    assert __version__ != "0+unknown"  # installed: the version comes from the distribution
