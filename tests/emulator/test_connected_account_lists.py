"""What a platform reads of each connected account: its persons (`/v1/accounts/{id}/persons`) and its
external accounts (`/v1/accounts/{id}/external_accounts`, the first 10 embedded in the account), with
their changes recorded in the connected account's own events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from stripe_emulator import Emulator

from .conftest import client_for


@pytest.fixture(scope="module")
def platform() -> Iterator[Emulator]:
    with Emulator(seed=4, scale=60, connected_scales=[60, 60, 60]) as emu:
        yield emu


def get(emu: Emulator, path: str, key: str | None = None, **params) -> dict:
    return client_for(emu, key).raw_request("get", path, **params).data  # type: ignore[attr-defined]


def every(emu: Emulator, path: str, **params) -> list[dict]:
    found, after = [], None
    while True:
        page = get(emu, path, limit=3, **params, **({"starting_after": after} if after else {}))
        found += page["data"]
        if not page["has_more"]:
            return found
        after = page["data"][-1]["id"]


def listed_ids(emu: Emulator, account: str, relation: str) -> list[str]:
    """The ids the emulator holds for one of an account's lists, in its order (still there)."""
    store = emu.store(account)
    return [i for i in store.related(relation, account) if store.find(i) is not None]


def test_persons_list_newest_first_and_page_both_ways(platform: Emulator):
    account = platform.connected_account_ids[0]
    persons = every(platform, f"/v1/accounts/{account}/persons")
    assert {p["id"] for p in persons} == set(listed_ids(platform, account, "account_persons"))
    assert len(persons) >= 2 and all(p["object"] == "person" and p["account"] == account for p in persons)
    assert [p["created"] for p in persons] == sorted((p["created"] for p in persons), reverse=True)
    before = get(platform, f"/v1/accounts/{account}/persons", limit=1, ending_before=persons[-1]["id"])
    assert [p["id"] for p in before["data"]] == [persons[-2]["id"]]
    owners = get(platform, f"/v1/accounts/{account}/persons", relationship={"owner": "true"})
    assert owners["data"] and all(p["relationship"]["owner"] for p in owners["data"])
    assert owners["url"] == f"/v1/accounts/{account}/persons"
    with pytest.raises(stripe.InvalidRequestError):
        get(platform, f"/v1/accounts/{account}/persons", relationship={"partner": "true"})


def test_external_accounts_embed_the_first_ten_and_page_the_rest(platform: Emulator):
    wide = [a for a in platform.connected_account_ids if len(listed_ids(platform, a, "account_external_accounts")) > 10]
    assert wide and len(wide) < len(platform.connected_account_ids)  # some accounts have more than Stripe embeds
    account = wide[0]
    listed = every(platform, f"/v1/accounts/{account}/external_accounts")
    assert [e["id"] for e in listed] == listed_ids(platform, account, "account_external_accounts")
    assert {e["object"] for e in listed} == {"bank_account", "card"}
    assert all(e["account"] == account and e["customer"] is None for e in listed)
    embedded = get(platform, f"/v1/accounts/{account}")["external_accounts"]
    assert embedded["data"] == listed[:10] and embedded["has_more"]
    assert embedded["url"] == f"/v1/accounts/{account}/external_accounts"
    cards = every(platform, f"/v1/accounts/{account}/external_accounts", object="card")
    assert cards and cards == [e for e in listed if e["object"] == "card"]


def test_an_unknown_or_disconnected_account_is_refused(platform: Emulator):
    with pytest.raises(stripe.InvalidRequestError) as missing:
        get(platform, "/v1/accounts/acct_1Unknown0000000/persons")
    assert missing.value.http_status == 404 and "No such account" in str(missing.value.user_message)
    own_key = platform.add_key(kind="secret", account=platform.connected_account_ids[0])
    with pytest.raises(stripe.PermissionError) as not_platform:
        get(platform, f"/v1/accounts/{platform.connected_account_ids[1]}/external_accounts", own_key)
    assert "Only Stripe Connect platforms" in str(not_platform.value.user_message)
    # its own, it may read
    own = platform.connected_account_ids[0]
    assert get(platform, f"/v1/accounts/{own}/persons", own_key)["data"]


def test_a_restricted_key_needs_the_connect_permission(platform: Emulator):
    account = platform.connected_account_ids[0]
    without = platform.add_key(kind="restricted", permissions={"customers": "read"})
    for path in ("/v1/accounts", f"/v1/accounts/{account}", f"/v1/accounts/{account}/persons",
                 f"/v1/accounts/{account}/external_accounts"):
        with pytest.raises(stripe.PermissionError) as refused:
            get(platform, path, without)
        assert "'rak_connected_account_read' permission" in str(refused.value.user_message)
        assert without not in str(refused.value.user_message)
    allowed = platform.add_key(kind="restricted", permissions={"connected_accounts": "read"})
    assert get(platform, f"/v1/accounts/{account}/persons", allowed)["data"]


def test_changes_are_events_of_the_connected_account():
    with Emulator(seed=6, scale=60, connected_scales=[60, 60]) as emu:
        account = emu.connected_account_ids[1]
        since = emu.now()
        person = emu.create("persons", account=account, first_name="Rosa")
        kept = emu.update("persons", person["id"], account=account, email="rosa@example.com")
        assert kept["email"] == "rosa@example.com"
        doomed = listed_ids(emu, account, "account_persons")[0]
        emu.delete("persons", doomed, account=account)
        bank = emu.create("bank_accounts", account=account, currency="eur")
        emu.update("bank_accounts", bank["id"], account=account, metadata={"use": "eu"})
        card = emu.create("external_cards", account=account)
        emu.delete("external_cards", card["id"], account=account)
        profile = emu.account_object(emu.store(account))["business_profile"]
        emu.update_account(account, business_profile=dict(profile, url="https://shop.example.com"))

        events = [e for e in emu.objects("events", account=account) if e["created"] >= since]
        got = {(e["type"], e["data"]["object"]["id"]) for e in events}
        assert got >= {("person.created", person["id"]), ("person.updated", person["id"]),
                       ("person.deleted", doomed), ("account.external_account.created", bank["id"]),
                       ("account.external_account.updated", bank["id"]),
                       ("account.external_account.created", card["id"]),
                       ("account.external_account.deleted", card["id"]), ("account.updated", account)}
        assert all(e["account"] == account for e in events)
        updated = next(e for e in events if e["type"] == "account.updated")
        assert updated["data"]["previous_attributes"]["business_profile"]["url"] == profile["url"]
        # none of it on the platform's own events
        assert not [e for e in emu.objects("events") if e["created"] >= since]
        persons = [p["id"] for p in every(emu, f"/v1/accounts/{account}/persons")]
        assert person["id"] in persons and doomed not in persons
        external = [e["id"] for e in every(emu, f"/v1/accounts/{account}/external_accounts")]
        assert bank["id"] in external and card["id"] not in external
        assert get(emu, f"/v1/accounts/{account}")["business_profile"]["url"] == "https://shop.example.com"
