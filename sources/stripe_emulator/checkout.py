"""Checkout: Checkout Sessions and their line items, Payment Links, SetupIntents and their attempts.

A session sells line items (each an `item` naming its price) in one of three modes: `payment` (a
payment intent pays it), `subscription` (it starts a subscription) or `setup` (a setup intent saves
a payment method). Open sessions complete or expire within a day (`checkout.session.completed` /
`.expired`; Stripe sends no event when one is created). A payment link makes sessions of its own
items. A setup intent records each confirmation as a setup attempt (`/v1/setup_attempts?setup_intent=`).
"""

from __future__ import annotations

from typing import Any

from .billing import Billing

SESSION_LIFETIME = 86400  # Stripe expires an open session after 24 hours by default
CUSTOM_TEXT = {"after_submit": None, "shipping_address": None, "submit": None, "terms_of_service_acceptance": None}
NO_INVOICE = {"enabled": False, "invoice_data": {"account_tax_ids": None, "custom_fields": None, "description": None,
                                                 "footer": None, "issuer": None, "metadata": {},
                                                 "rendering_options": None}}


class Checkout(Billing):
    # --- line items (`item`): what a session, payment link or quote sells
    def line_item(self, price: dict, quantity: int, relation: str, parent: str) -> dict:
        product = self.store.collections["products"].objects.get(price["product"]) or {"name": "Item"}
        amount = self.amount_for(price, quantity)
        item = {"id": self.ids.new("li"), "object": "item", "adjustable_quantity": None, "amount_discount": 0,
                "amount_subtotal": amount, "amount_tax": 0, "amount_total": amount, "currency": price["currency"],
                "description": product["name"], "metadata": {}, "price": self.store.get("prices", price["id"]),
                "quantity": quantity}
        self.add("items", item)
        self.store.relate(relation, parent, item["id"])
        return item

    def _sold(self, currency: str, recurring: bool, n: int, at: int) -> list[dict]:
        if recurring:
            return self.recurring_prices(currency, "month", n, at)
        prices = []
        for _ in range(n):
            price = self.pick(f"one_time_{currency}", lambda p: p["active"] and p["created"] <= at)
            prices.append(price or self.price(recurring=False, currency=currency, created=self.before(at)))
        return prices

    # --- checkout sessions
    def checkout_session(self, customer: dict | None = None, status: str | None = None, mode: str | None = None,
                         created: int | None = None, lines: int | None = None, payment_link: dict | None = None,
                         **fields: Any) -> dict:
        """A session, taken to `status`: complete (paid, subscribed or set up), expired, or still open."""
        r = self.rng
        if payment_link is None and mode is None and r.random() < 0.2:  # bought through a payment link
            payment_link = self.pick("payment_links")
        mode = mode or ("payment" if payment_link else self.vary("checkout_mode", ["payment"] * 6 + [
            "subscription", "subscription", "setup"]))
        guest = customer is None and mode == "payment" and r.random() < 0.3
        customer = None if guest else customer or self.pick_customer()
        created = created or self.when(customer["created"] if customer else None)
        status = status or self.vary("checkout_status", ["complete"] * 6 + ["expired", "open"])
        if status == "open" and created < self.now - SESSION_LIFETIME:  # an old session is over by now
            status = r.choice(["complete", "expired"])
        currency = (customer or {}).get("currency") or "usd"
        session_id = self.ids.new("cs_test")
        email = customer["email"] if customer else f"guest{r.randint(1, 10**6)}@example.com"
        session = {
            "id": session_id, "object": "checkout.session", "adaptive_pricing": {"enabled": mode == "payment"},
            "after_expiration": None, "allow_promotion_codes": r.choice([None, True]), "amount_subtotal": 0,
            "amount_total": 0,
            "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
            "billing_address_collection": r.choice([None, "auto", "required"]),
            "cancel_url": "https://shop.example.com/cart", "client_reference_id": None,
            "client_secret": None, "collected_information": None, "consent": None, "consent_collection": None,
            "created": created, "currency": currency, "currency_conversion": None, "custom_fields": [],
            "custom_text": CUSTOM_TEXT, "customer": customer["id"] if customer else None,
            "customer_account": customer["customer_account"] if customer else None,
            "customer_creation": "if_required" if mode == "payment" else None, "customer_details": None,
            "customer_email": None if customer else email, "discounts": [], "expires_at": created + SESSION_LIFETIME,
            "integration_identifier": None, "invoice": None, "invoice_creation": NO_INVOICE if mode == "payment"
            else None, "livemode": self.livemode, "locale": r.choice([None, "auto", "de"]), "managed_payments": None,
            "metadata": {}, "mode": mode, "origin_context": None, "payment_intent": None,
            "payment_link": payment_link["id"] if payment_link else None,
            "payment_method_collection": "if_required" if mode == "subscription" else None,
            "payment_method_configuration_details": None,
            "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
            "payment_method_types": ["card"], "payment_status": "no_payment_required" if mode == "setup" else "unpaid",
            "permissions": None, "phone_number_collection": {"enabled": False}, "recovered_from": None,
            "saved_payment_method_options": None, "setup_intent": None, "shipping_address_collection": None,
            "shipping_cost": None, "shipping_options": [], "status": "open",
            "submit_type": "pay" if mode == "payment" else None, "subscription": None,
            "success_url": "https://shop.example.com/thanks?session_id={CHECKOUT_SESSION_ID}",
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}, "ui_mode": "hosted_page",
            "url": f"https://checkout.stripe.com/c/pay/{session_id}", "wallet_options": None,
        }
        self.add("checkout_sessions", session, fields)
        self.remember("checkout_sessions", session)
        if mode != "setup":
            if payment_link is not None:
                sold = [(i["price"], i["quantity"]) for i in self.store.related_objects("payment_link_line_items",
                                                                                          payment_link["id"])]
            else:
                many = None if mode == "subscription" else self.big("checkout_sessions", 11, 25)  # 20 at most
                n = lines or many or r.choice([1, 1, 1, 2, 3])
                sold = [(p, r.choice([1, 1, 2])) for p in self._sold(currency, mode == "subscription", n, created)]
            total = sum(self.line_item(price, qty, "checkout_session_line_items", session_id)["amount_total"]
                        for price, qty in sold)
            self.store.patch("checkout_sessions", session_id, amount_subtotal=total, amount_total=total)
            session.update(amount_subtotal=total, amount_total=total)
        if status == "open":
            return session
        at = self.later(session, within=SESSION_LIFETIME)
        if status == "expired":
            self.change("checkout_sessions", session, at, ("expired",), status="expired",
                        url=None, after_expiration=None)
            return session
        return self.complete_session(session, customer, at)

    def complete_session(self, session: dict, customer: dict | None, at: int) -> dict:
        """The buyer paid (or subscribed, or saved a card): `checkout.session.completed`."""
        if customer is None:  # a guest who let Checkout create a customer
            customer = self.customer(created=at, email=session["customer_email"])
        done: dict[str, Any] = {"status": "complete", "url": None, "customer": customer["id"],
                                "customer_account": customer["customer_account"],
                                "customer_details": {"address": customer["address"], "business_name": None,
                                                     "email": customer["email"], "individual_name": None,
                                                     "name": customer["name"], "phone": customer["phone"],
                                                     "tax_exempt": customer["tax_exempt"], "tax_ids": []},
                                "collected_information": {"business_name": None, "individual_name": None,
                                                          "shipping_details": None}}
        if session["mode"] == "payment":
            pi = self.payment_intent(customer, amount=session["amount_total"], currency=session["currency"],
                                     status="succeeded", created=at, description=None)
            done.update(payment_intent=pi["id"], payment_status="paid")
        elif session["mode"] == "subscription":
            prices = [i["price"] for i in self.store.related_objects("checkout_session_line_items", session["id"])]
            sub = self.subscription(customer, items=len(prices), status="active", created=at, price=prices[0])
            done.update(subscription=sub["id"], payment_status="paid", invoice=self.store.get(
                "subscriptions", sub["id"])["latest_invoice"])
        else:
            intent = self.setup_intent(customer, status="succeeded", created=at)
            done.update(setup_intent=intent["id"])
        return self.change("checkout_sessions", session, max(at, self.touched.get(session["id"], at)),
                           ("completed",), **done)

    # --- payment links
    def payment_link(self, created: int | None = None, lines: int | None = None, active: bool | None = None,
                     **fields: Any) -> dict:
        r = self.rng
        created = created or self.when()
        link_id = self.ids.new("plink")
        link = {
            "id": link_id, "object": "payment_link",
            "active": self.vary("payment_link_active", [True] * 5 + [False]) if active is None else active,
            "after_completion": {"hosted_confirmation": {"custom_message": None}, "type": "hosted_confirmation"},
            "allow_promotion_codes": r.random() < 0.3, "application": None, "application_fee_amount": None,
            "application_fee_percent": None, "automatic_tax": {"enabled": False, "liability": None},
            "billing_address_collection": "auto", "consent_collection": None, "currency": "usd", "custom_fields": [],
            "custom_text": CUSTOM_TEXT, "customer_creation": "if_required", "inactive_message": None,
            "invoice_creation": NO_INVOICE, "livemode": self.livemode, "managed_payments": None, "metadata": {},
            "on_behalf_of": None,
            "payment_intent_data": None, "payment_method_collection": "always", "payment_method_options": None,
            "payment_method_types": None,
            "phone_number_collection": {"enabled": False}, "restrictions": None, "shipping_address_collection": None,
            "shipping_options": [], "submit_type": "auto", "subscription_data": None,
            "tax_id_collection": {"enabled": False, "required": "never"}, "transfer_data": None,
            "url": f"https://buy.stripe.com/test_{link_id[-14:]}",
        }
        self.store.set_extra(link_id, created=created)  # the list orders by it; Stripe does not show it
        self.add("payment_links", link, fields)
        n = lines or self.big("payment_links", 11, 20) or r.choice([1, 1, 2])
        for price in self._sold("usd", False, n, created):
            self.line_item(price, 1, "payment_link_line_items", link_id)
        self.remember("payment_links", link)
        self.emit("payment_link.created", "payment_links", link_id, created)
        return link

    # --- setup intents and their attempts
    def setup_intent(self, customer: dict | None = None, status: str | None = None, created: int | None = None,
                     **fields: Any) -> dict:
        """A setup intent taken to `status`, each confirmation leaving a setup attempt."""
        r = self.rng
        customer = customer or self.pick_customer()
        created = created or self.when(customer["created"])
        status = status or self.vary("setup_intents", ["succeeded"] * 5 + [
            "requires_payment_method", "canceled", "requires_action"])
        intent_id = self.ids.new("seti")
        intent = {
            "id": intent_id, "object": "setup_intent", "application": None,
            "automatic_payment_methods": {"allow_redirects": "always", "enabled": True},
            "cancellation_reason": None, "client_secret": f"{intent_id}_secret_{self.ids.new('s')[5:]}",
            "created": created, "customer": customer["id"], "customer_account": customer["customer_account"],
            "description": None, "excluded_payment_method_types": None, "flow_directions": None,
            "last_setup_error": None, "latest_attempt": None, "livemode": self.livemode, "mandate": None,
            "metadata": {}, "next_action": None, "on_behalf_of": None, "payment_method": None,
            "payment_method_configuration_details": None,
            "payment_method_options": {"card": {"mandate_options": None, "network": None,
                                                "request_three_d_secure": "automatic"}},
            "payment_method_types": ["card"], "single_use_mandate": None, "status": "requires_payment_method",
            "usage": "off_session",
        }
        self.add("setup_intents", intent, fields)
        self.remember("setup_intents", intent)
        self.emit("setup_intent.created", "setup_intents", intent_id, created)
        if status == "canceled":
            self.change("setup_intents", intent, self.later(intent), ("canceled",), status="canceled",
                        cancellation_reason=r.choice(["abandoned", "requested_by_customer", "duplicate"]))
        elif status == "requires_payment_method" or (status == "succeeded" and r.random() < 0.3):
            failed = self.setup_attempt(intent, customer, created, "failed")  # a card that was declined
            self.change("setup_intents", intent, created, ("setup_failed",), latest_attempt=failed["id"],
                        last_setup_error=failed["setup_error"])
        if status == "requires_action":
            attempt = self.setup_attempt(intent, customer, created, "requires_action")
            self.change("setup_intents", intent, created, ("requires_action",), status="requires_action",
                        latest_attempt=attempt["id"], payment_method=attempt["payment_method"],
                        next_action={"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect",
                                                                                  "stripe_js": ""}})
        elif status == "succeeded":
            at = self.later(intent, within=600)
            attempt = self.setup_attempt(intent, customer, at, "succeeded")
            self.change("setup_intents", intent, at, ("succeeded",), status="succeeded", latest_attempt=attempt["id"],
                        payment_method=attempt["payment_method"], last_setup_error=None)
        return intent

    def setup_attempt(self, intent: dict, customer: dict, created: int, status: str) -> dict:
        pm = self.payment_method(customer, created, attach=status == "succeeded")  # saved once it worked
        card = pm["card"]
        declined = status == "failed"
        attempt = {
            "id": self.ids.new("setatt"), "object": "setup_attempt", "application": None, "created": created,
            "customer": customer["id"],
            "customer_account": customer["customer_account"], "flow_directions": None, "livemode": self.livemode,
            "on_behalf_of": None, "payment_method": pm["id"],
            "payment_method_details": {"card": {
                "brand": card["brand"], "checks": card["checks"], "country": card["country"],
                "exp_month": card["exp_month"], "exp_year": card["exp_year"], "fingerprint": card["fingerprint"],
                "funding": card["funding"], "last4": card["last4"], "network": card["brand"],
                "three_d_secure": None, "wallet": None}, "type": "card"},
            "setup_error": {"advice_code": None, "charge": None, "code": "card_declined", "decline_code":
                            "generic_decline", "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                            "message": "Your card was declined.", "network_advice_code": None,
                            "network_decline_code": None, "param": None, "payment_method": None,
                            "payment_method_type": "card", "type": "card_error"} if declined else None,
            "setup_intent": intent["id"], "status": status, "usage": intent["usage"],
        }
        return self.add("setup_attempts", attempt)
