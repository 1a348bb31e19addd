"""A connected account's side of Connect: the people of its business (persons) and the bank accounts and
debit cards its payouts go to (external accounts), which its platform reads at `/v1/accounts/{id}/persons`
and `/v1/accounts/{id}/external_accounts` (the account embeds its first 10 external accounts).

Stripe records their changes, and the account's own (`account.updated`), on the connected account: in
its events, naming it in `account`, not in the platform's. Every other connected account has more
external accounts than the 10 its account object embeds (the world's seed decides which).
"""

from __future__ import annotations

from typing import Any

from .accounts import account_object
from .builder import address
from .issuing import Issuing
from .store import EVENT_RETENTION

PEOPLE = (("Jane", "Diaz"), ("Omar", "Haddad"), ("Mei", "Tanaka"), ("Lars", "Berg"), ("Ana", "Costa"),
          ("Kwame", "Mensah"))
NO_PERSON_REQUIREMENTS = {"alternatives": [], "currently_due": [], "errors": [], "eventually_due": [],
                          "past_due": [], "pending_verification": []}


class Connect(Issuing):
    def __init__(self, store: Any, *, seed: int, **kw: Any) -> None:
        super().__init__(store, seed=seed, **kw)
        # connected accounts are built with consecutive seeds: every other one gets many external accounts
        self.many_external_accounts = seed % 2 == 1

    # --- built once per connected account
    def connect_profile(self) -> None:
        """Its representative and owners; its external accounts beyond the bank accounts its payouts made."""
        first = self.person(created=self.start, roles=("representative", "executive", "owner"))
        self.person(created=self.later(first, within=90 * 86400), roles=("owner",))
        if self.chance(0.5):
            self.person(created=self.later(first, within=90 * 86400), roles=("director",))
        if not self.store.related("account_external_accounts", self.store.account_id):
            self.bank_account("usd")
        extra = self.rng.randint(11, 14) if self.many_external_accounts else self.rng.randint(0, 1)
        for n in range(extra):
            self.external_account("card" if n % 4 == 3 else "bank_account", created=self.when())

    def connect_history(self) -> None:
        """The last 30 days: a person added, one updated, one removed; an external account added, one
        updated, one removed; the account's support phone changed (`account.updated`)."""
        lo = self.now - 29 * 86400
        at = self.rng.randint(lo, self.now - 7200)
        added = self.person(created=at, roles=("director",))
        if person := self._live("persons", lambda p: p["id"] != added["id"]):
            self.change("persons", person, self.later(person, lo, within=EVENT_RETENTION), phone="+15555550142")
        if person := self._live("persons", lambda p: not p["relationship"]["representative"]
                                and p["id"] != added["id"]):
            self.delete("persons", person, self.later(person, lo, within=EVENT_RETENTION))
        made = self.external_account("bank_account", created=self.rng.randint(lo, self.now - 7200))
        listed = self.store.found_related("account_external_accounts", self.store.account_id)
        others = [found for found in listed if found[1]["id"] != made["id"]]
        if others:
            kind, bank = self.rng.choice(others)
            self.change(kind, bank, self.later(bank, lo, within=EVENT_RETENTION), metadata={"payouts": "weekly"})
        removable = [found for found in others if not found[1]["default_for_currency"]]
        if removable:
            kind, gone = self.rng.choice(removable)
            self.delete(kind, gone, self.later(gone, lo, within=EVENT_RETENTION))
        self.update_account(self.rng.randint(lo, self.now - 7200),
                            business_profile=dict(self._account()["business_profile"], support_phone="+15555550199"))

    # --- the objects
    def person(self, created: int | None = None, roles: tuple[str, ...] = ("owner",), **fields: Any) -> dict:
        r = self.rng
        created = created or self.when()
        first, last = r.choice(PEOPLE)
        relationship = {"authorizer": False, "director": False, "executive": False, "legal_guardian": False,
                        "owner": False, "percent_ownership": None, "representative": False, "title": None}
        relationship.update({role: True for role in roles})
        if "owner" in roles:
            relationship["percent_ownership"] = float(r.choice([25, 40, 50, 60]))
        if "executive" in roles or "representative" in roles:
            relationship["title"] = r.choice(["CEO", "COO", "Founder"])
        person = {
            "id": self.ids.new("person"), "object": "person", "account": self.store.account_id,
            "additional_tos_acceptances": {"account": {"date": None, "ip": None, "user_agent": None}},
            "address": address(r, "US"), "address_kana": None, "address_kanji": None, "created": created,
            "dob": {"day": r.randint(1, 28), "month": r.randint(1, 12), "year": r.randint(1955, 2000)},
            "email": f"{first.lower()}.{last.lower()}@example.com", "first_name": first, "first_name_kana": None,
            "first_name_kanji": None, "full_name_aliases": [], "future_requirements": NO_PERSON_REQUIREMENTS,
            "gender": None, "id_number_provided": True, "id_number_secondary_provided": False, "last_name": last,
            "last_name_kana": None, "last_name_kanji": None, "maiden_name": None, "metadata": {},
            "nationality": None, "phone": f"+1555{r.randint(1000000, 9999999)}", "political_exposure": "none",
            "registered_address": None, "relationship": relationship, "requirements": NO_PERSON_REQUIREMENTS,
            "ssn_last_4_provided": True, "us_cfpb_data": None,
            "verification": {"additional_document": {"back": None, "details": None, "details_code": None,
                                                     "front": None},
                             "details": None, "details_code": None,
                             "document": {"back": None, "details": None, "details_code": None, "front": None},
                             "status": "verified"},
        }
        self.add("persons", person, fields)
        self.store.relate("account_persons", self.store.account_id, person["id"])
        self.emit("person.created", "persons", person["id"], created)
        return person

    def external_account(self, kind: str = "bank_account", created: int | None = None, currency: str = "usd",
                         **fields: Any) -> dict:
        """A bank account or debit card added for payouts (`account.external_account.created`)."""
        created = created or self.when()
        if kind == "bank_account":
            made = self.bank_account(currency, **fields)
            self.emit("account.external_account.created", "bank_accounts", made["id"], created)
            return made
        r = self.rng
        card = {"id": self.ids.new("card"), "object": "card", "account": self.store.account_id,
                "address_city": None, "address_country": None, "address_line1": None, "address_line1_check": None,
                "address_line2": None, "address_state": None, "address_zip": None, "address_zip_check": None,
                "allow_redisplay": None, "available_payout_methods": ["standard", "instant"],
                "brand": r.choice(["Visa", "MasterCard"]),
                "country": "US", "currency": currency, "customer": None, "cvc_check": None,
                "default_for_currency": False, "dynamic_last4": None, "exp_month": r.randint(1, 12),
                "exp_year": r.randint(2027, 2031), "fingerprint": self.ids.new("fp")[5:21], "funding": "debit",
                "last4": f"{r.randint(0, 9999):04d}", "metadata": {}, "name": self.account_name,
                "regulated_status": "unregulated", "status": "new", "tokenization_method": None}
        self.add("external_cards", card, fields)
        self.store.relate("account_external_accounts", self.store.account_id, card["id"])
        self.emit("account.external_account.created", "external_cards", card["id"], created)
        return card

    def external_card(self, created: int | None = None, **fields: Any) -> dict:
        return self.external_account("card", created, **fields)

    # --- the account itself
    def _account(self) -> dict:
        return account_object(self.store, self.store.extra(self.store.account_id, "opened", self.start), False)

    def update_account(self, at: int, **fields: Any) -> dict:
        """`account.updated` on the account, with the old values in `previous_attributes`."""
        before = self._account()
        changes = dict(self.store.extra(self.store.account_id, "account_changes", {}), **fields)
        self.store.set_extra(self.store.account_id, account_changes=changes)
        after = self._account()
        previous = {k: before.get(k) for k in fields if before.get(k) != after.get(k)}
        if previous and self.recent(at):
            self.store.record("account.updated", after, previous, created=at, delivered=self.delivered(at))
        return after
