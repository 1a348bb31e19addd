"""Issuing: cardholders, the cards issued to them, authorizations at merchants, the transactions they
settle into, and disputes of those transactions; and files (dispute evidence, logos) with their links.

An authorization is approved (or declined) and stays `pending` until the merchant captures it
(`closed`, with a `capture` transaction and its balance transaction) or it is reversed. A card
embeds its cardholder as it is now. A dispute is submitted with evidence, then won or lost.
"""

from __future__ import annotations

from typing import Any

from .contracts import Contracts

MERCHANTS = (("Rocket Rides", "taxicabs_limousines", "4121", "San Francisco", "CA", "94107"),
             ("Corner Cafe", "eating_places_restaurants", "5812", "Austin", "TX", "73301"),
             ("Cloud Hosting Inc", "computer_network_services", "4816", "Seattle", "WA", "98101"),
             ("Airline Co", "airlines_air_carriers", "4511", "Chicago", "IL", "60601"))
NO_CONTROLS = {"allowed_card_presences": None, "allowed_categories": None, "allowed_merchant_countries": None,
               "blocked_card_presences": None, "blocked_categories": None, "blocked_merchant_countries": None,
               "spending_limits": [], "spending_limits_currency": None}
NO_AMOUNT_DETAILS = {"atm_fee": None, "cashback_amount": None}


class Issuing(Contracts):
    # --- cardholders and cards
    def issuing_cardholder(self, created: int | None = None, status: str | None = None, **fields: Any) -> dict:
        r = self.rng
        created = created or self.when()
        first = r.choice(["Ada", "Grace", "Alan", "Ken", "Frances"])
        last = r.choice(["Lovelace", "Hopper", "Turing", "Thompson", "Allen"])
        company = r.random() < 0.3
        cardholder = {
            "id": self.ids.new("ich"), "object": "issuing.cardholder",
            "billing": {"address": {"city": "Austin", "country": "US", "line1": f"{r.randint(1, 900)} Congress Ave",
                                    "line2": None, "postal_code": "73301", "state": "TX"}},
            "company": {"tax_id_provided": True} if company else None, "created": created,
            "email": f"{first.lower()}.{last.lower()}@example.com",
            "individual": None if company else {
                "card_issuing": {"user_terms_acceptance": {"date": created, "ip": "203.0.113.9", "user_agent": None}},
                "dob": {"day": r.randint(1, 28), "month": r.randint(1, 12), "year": r.randint(1960, 2000)},
                "first_name": first, "last_name": last,
                "verification": {"document": {"back": None, "front": None}}},
            "livemode": self.livemode, "metadata": {}, "name": f"{first} {last}",
            "phone_number": f"+1555{r.randint(1000000, 9999999)}", "preferred_locales": ["en"],
            "requirements": {"disabled_reason": None, "past_due": []},
            "spending_controls": dict(NO_CONTROLS, spending_limits=[{"amount": 50_000, "categories": [],
                                                                      "interval": "monthly"}],
                                      spending_limits_currency="usd"),
            "status": status or self.vary("issuing_cardholders", ["active"] * 6 + ["inactive", "blocked"]),
            "type": "company" if company else "individual",
        }
        self.add("issuing_cardholders", cardholder, fields)
        self.remember("issuing_cardholders", cardholder)
        self.emit("issuing_cardholder.created", "issuing_cardholders", cardholder["id"], created)
        return cardholder

    def issuing_card(self, cardholder: dict | None = None, created: int | None = None, status: str | None = None,
                     **fields: Any) -> dict:
        r = self.rng
        cardholder = cardholder or self.pick("issuing_cardholders", lambda c: c["status"] == "active") or \
            self.issuing_cardholder()
        created = created or self.when(cardholder["created"])
        physical = r.random() < 0.3
        status = status or self.vary("issuing_cards", ["active"] * 6 + ["inactive", "canceled"])
        card = {
            "id": self.ids.new("ic"), "object": "issuing.card", "brand": "Visa",
            "cancellation_reason": r.choice(["lost", "stolen"]) if status == "canceled" else None,
            "cardholder": self.store.get("issuing_cardholders", cardholder["id"]), "created": created,
            "currency": "usd", "exp_month": r.randint(1, 12), "exp_year": r.randint(2028, 2031),
            "last4": f"{r.randint(0, 9999):04d}", "latest_fraud_warning": None, "lifecycle_controls": None,
            "livemode": self.livemode, "metadata": {},
            "personalization_design": self.ids.new("ipcd") if physical and r.random() < 0.5 else None,
            "replaced_by": None,
            "replacement_for": None, "replacement_reason": None, "second_line": None,
            "shipping": {"address": cardholder["billing"]["address"], "address_validation": None,
                         "carrier": "usps", "customs": None, "eta": created + 5 * 86400, "name": cardholder["name"],
                         "phone_number": None, "require_signature": None, "service": "standard",
                         "status": "delivered", "tracking_number": f"9400{r.randint(10**11, 10**12 - 1)}",
                         "tracking_url": None, "type": "individual"} if physical else None,
            "spending_controls": NO_CONTROLS, "status": status, "type": "physical" if physical else "virtual",
            "wallets": {"apple_pay": {"eligible": True, "ineligible_reason": None},
                        "google_pay": {"eligible": True, "ineligible_reason": None},
                        "primary_account_identifier": None},
        }
        self.add("issuing_cards", card, fields)
        self.remember("issuing_cards", card)
        self.emit("issuing_card.created", "issuing_cards", card["id"], created)
        return card

    def update_cardholder(self, cardholder: dict, at: int, **fields: Any) -> dict:
        """`issuing_cardholder.updated`; its cards embed it as it is now (their own events stay silent)."""
        changed = self.change("issuing_cardholders", cardholder, at, **fields)
        for card in self.store.collections["issuing_cards"].objects.values():
            if card["cardholder"]["id"] == cardholder["id"]:
                self.store.patch("issuing_cards", card["id"], cardholder=self.store.get("issuing_cardholders",
                                                                                        cardholder["id"]))
        return changed

    # --- authorizations, transactions, disputes
    def issuing_authorization(self, card: dict | None = None, created: int | None = None, status: str | None = None,
                              amount: int | None = None, **fields: Any) -> dict | None:
        r = self.rng
        card = card or self.pick("issuing_cards", lambda c: c["status"] == "active")
        if card is None:
            return None
        card = self.store.get("issuing_cards", card["id"])
        created = created or self.when(card["created"])
        status = status or self.vary("issuing_authorizations", ["closed"] * 6 + ["reversed", "pending", "declined"])
        if status == "pending" and created < self.now - 7 * 86400:  # an old hold is captured or expired by now
            status = r.choice(["closed", "expired"])
        approved = status != "declined"
        amount = amount if amount is not None else r.choice([1250, 4300, 899, 15_000, 2599])
        name, category, code, city, state, postal = r.choice(MERCHANTS)
        merchant = {"category": category, "category_code": code, "city": city, "country": "US", "name": name,
                    "network_id": f"{r.randint(10**9, 10**10 - 1)}", "postal_code": postal, "state": state,
                    "tax_id": None, "terminal_id": None, "url": None}
        request = {"amount": amount, "amount_details": NO_AMOUNT_DETAILS, "approved": approved,
                   "authorization_code": f"{r.randint(0, 999999):06d}" if approved else None, "created": created,
                   "currency": "usd", "merchant_amount": amount, "merchant_currency": "usd",
                   "network_risk_score": r.randint(0, 99),
                   "reason": "webhook_approved" if approved else "spending_controls",
                   "reason_message": None, "requested_at": created}
        authorization = {
            "id": self.ids.new("iauth"), "object": "issuing.authorization", "amount": amount if approved else 0,
            "amount_details": NO_AMOUNT_DETAILS, "approved": approved,
            "authorization_method": r.choice(["online", "contactless", "chip", "keyed_in"]),
            "balance_transactions": [], "card": card, "card_presence": None, "cardholder": card["cardholder"]["id"],
            "created": created, "currency": "usd", "fleet": None, "fuel": None, "livemode": self.livemode,
            "merchant_amount": amount if approved else 0, "merchant_currency": "usd", "merchant_data": merchant,
            "metadata": {}, "network_data": {"acquiring_institution_id": f"{r.randint(10**5, 10**6 - 1)}",
                                             "system_trace_audit_number": f"{r.randint(0, 999999):06d}",
                                             "transaction_id": f"{r.randint(10**14, 10**15 - 1)}"},
            "pending_request": None, "request_history": [request],
            "status": "closed" if not approved else "pending", "token": None, "transactions": [],
            "verification_data": {"address_line1_check": "not_provided", "address_postal_code_check": "match",
                                  "authentication_exemption": None, "cvc_check": "match", "expiry_check": "match",
                                  "postal_code": postal, "three_d_secure": None},
            "verified_by_fraud_challenge": None, "wallet": r.choice([None, None, "apple_pay"]),
        }
        self.add("issuing_authorizations", authorization, fields)
        self.remember("issuing_authorizations", authorization)
        self.emit("issuing_authorization.created", "issuing_authorizations", authorization["id"], created)
        if status in ("closed", "reversed", "expired") and approved:
            at = self.later(authorization, within=3 * 86400)
            if status == "closed":
                self.capture(authorization, at)
                if r.random() < 0.15:  # the merchant refunded it
                    self.issuing_transaction(authorization, amount, self.later(authorization, within=10 * 86400),
                                             "refund")
            else:
                self.change("issuing_authorizations", authorization, at, status=status, amount=0)
        return authorization

    def capture(self, authorization: dict, at: int) -> dict:
        """The merchant captured it: a `capture` transaction, and the authorization closes with it."""
        authorization = self.store.get("issuing_authorizations", authorization["id"])
        txn = self.issuing_transaction(authorization, -authorization["amount"], at, "capture")
        return self.change("issuing_authorizations", authorization, at, status="closed", amount=0,
                           transactions=[*authorization["transactions"], self.store.get("issuing_transactions",
                                                                                        txn["id"])])

    def issuing_transaction(self, authorization: dict, amount: int, created: int, kind: str) -> dict:
        txn_id = self.ids.new("ipi")
        balance = self.balance_transaction(txn_id, amount, "usd", created, "issuing_transaction")
        txn = {"id": txn_id, "object": "issuing.transaction", "amount": amount,
               "amount_details": NO_AMOUNT_DETAILS, "authorization": authorization["id"],
               "balance_transaction": balance["id"], "card": authorization["card"]["id"],
               "cardholder": authorization["cardholder"], "created": created, "currency": "usd", "dispute": None,
               "livemode": self.livemode, "merchant_amount": amount, "merchant_currency": "usd",
               "merchant_data": authorization["merchant_data"], "metadata": {},
               "network_data": {"authorization_code": authorization["request_history"][0]["authorization_code"],
                                "processing_date": None, "transaction_id": None},
               "token": None, "type": kind, "wallet": authorization["wallet"]}
        self.add("issuing_transactions", txn)
        self.remember("issuing_transactions", txn)
        self.emit("issuing_transaction.created", "issuing_transactions", txn["id"], created)
        return txn

    def issuing_dispute(self, transaction: dict | None = None, created: int | None = None, status: str | None = None,
                        **fields: Any) -> dict | None:
        r = self.rng
        transaction = transaction or self.pick("issuing_transactions", lambda t: t["type"] == "capture"
                                               and t["dispute"] is None)
        if transaction is None:
            return None
        transaction = self.store.get("issuing_transactions", transaction["id"])
        created = created or self.later(transaction, within=30 * 86400)
        status = status or self.vary("issuing_disputes", ["won", "lost", "submitted", "unsubmitted"])
        explanation = "The cardholder does not recognize this charge."
        dispute = {"id": self.ids.new("idp"), "object": "issuing.dispute", "amount": -transaction["amount"],
                   "balance_transactions": [], "created": created, "currency": "usd",
                   "evidence": {"fraudulent": {"additional_documentation": None, "explanation": explanation},
                                "reason": "fraudulent"},
                   "livemode": self.livemode, "loss_reason": None, "metadata": {}, "status": "unsubmitted",
                   "transaction": transaction["id"]}
        self.add("issuing_disputes", dispute, fields)
        self.remember("issuing_disputes", dispute)
        self.emit("issuing_dispute.created", "issuing_disputes", dispute["id"], created)
        self.change("issuing_transactions", transaction, created, dispute=dispute["id"])
        if status == "unsubmitted":
            return dispute
        at = self.later(dispute, within=5 * 86400)
        self.change("issuing_disputes", dispute, at, ("submitted",), status="submitted")
        if status in ("won", "lost"):
            closed = self.later(dispute, within=30 * 86400)
            done: dict[str, Any] = {"status": status}
            if status == "won":
                credit = self.balance_transaction(dispute["id"], dispute["amount"], "usd", closed, "issuing_dispute")
                done["balance_transactions"] = [self.store.get("balance_transactions", credit["id"])]
            else:
                done["loss_reason"] = r.choice(["merchandise_delivered_or_shipped", "transaction_authorized"])
            self.change("issuing_disputes", dispute, closed, ("closed",), **done)
        return dispute

    # --- files and their links
    def file(self, created: int | None = None, links: int | None = None, **fields: Any) -> dict:
        r = self.rng
        created = created or self.when()
        purpose, kind = r.choice([("dispute_evidence", "pdf"), ("dispute_evidence", "png"),
                                  ("business_logo", "png"), ("identity_document", "jpg")])
        file_id = self.ids.new("file")
        upload = {"id": file_id, "object": "file", "created": created,
                  "expires_at": created + 365 * 86400 if purpose == "dispute_evidence" else None,
                  "filename": f"{purpose}_{r.randint(1, 9999)}.{kind}",
                  "links": {"object": "list", "data": [], "has_more": False, "url": f"/v1/file_links?file={file_id}"},
                  "purpose": purpose, "size": r.randint(10_000, 2_000_000), "title": None, "type": kind,
                  "url": f"https://files.stripe.com/v1/files/{file_id}/contents"}
        self.add("files", upload, fields)
        self.remember("files", upload)
        self.emit("file.created", "files", file_id, created)
        for _ in range(links if links is not None else self.big("files", 11, 12) or r.choice([0, 0, 1])):
            self.file_link(upload, self.later(upload, within=30 * 86400))
        return upload

    def file_link(self, file: dict | None = None, created: int | None = None, **fields: Any) -> dict:
        file = file or self.pick("files") or self.file(links=0)
        created = created or self.later(file)
        expires = created + 30 * 86400 if self.rng.random() < 0.4 else None
        link = {"id": self.ids.new("link"), "object": "file_link", "created": created,
                "expired": expires is not None and expires <= self.now, "expires_at": expires,
                "file": file["id"], "livemode": self.livemode, "metadata": {},
                "url": f"https://files.stripe.com/links/{self.ids.new('fl')[3:]}"}
        self.add("file_links", link, fields)
        self.store.relate("file_links", file["id"], link["id"])
        links = self.store.related_objects("file_links", file["id"])  # the file shows its first ten
        self.store.patch("files", file["id"], links={"object": "list", "data": links[:10], "has_more": len(links) > 10,
                                                     "url": f"/v1/file_links?file={file['id']}"})
        return link
