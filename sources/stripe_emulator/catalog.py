"""Customers and the catalog: customers (with payment methods, card sources, tax ids), products,
prices (per unit, tiered, metered, in several currencies), plans, coupons, promotion codes, tax rates
and the discounts they become. Every recurring price is also a plan with the same id, as at Stripe.
"""

from __future__ import annotations

from typing import Any

from .builder import address
from .payments import Payments

CURRENCIES = ("usd", "usd", "usd", "usd", "eur", "gbp")
NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Donald")
TAX_CODES = {"txcd_10000000": ("General - Electronically Supplied Services",
                               "A digital service provided mainly through the internet with minimal human "
                               "involvement."),
             "txcd_10103001": ("Software as a service (SaaS) - business use",
                               "Cloud-based software for business use."),
             "txcd_99999999": ("General - Tangible Goods", "A physical good that can be moved or touched."),
             "txcd_92010001": ("Shipping", "Charges for delivering goods to the buyer.")}


def _decimal(amount: int | None) -> str | None:
    return None if amount is None else str(amount)


class Catalog(Payments):
    # --- customers
    def customer(self, created: int | None = None, **fields: Any) -> dict:
        r = self.rng
        n = r.randint(1, 10**6)
        created = created or self.when()
        name = r.choice(NAMES) + f" {n}"
        country = r.choice(["US", "US", "DE", "IE", "FR", "GB"])
        currency = r.choice([*CURRENCIES, None])  # no currency until first invoiced in one
        customer = {
            "id": self.ids.new("cus"), "object": "customer",
            "address": address(r, country) if r.random() < 0.7 else None, "balance": 0, "created": created,
            "currency": currency, "customer_account": None, "default_source": None, "delinquent": False,
            "description": r.choice([None, None, "Enterprise account", "Referred by partner"]), "discount": None,
            "email": f"customer{n}@example.com" if r.random() < 0.95 else None,
            "invoice_prefix": f"{n:06X}"[:8],
            "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None,
                                 "rendering_options": None},
            "livemode": self.livemode, "metadata": {}, "name": name, "next_invoice_sequence": 1,
            "phone": r.choice([None, None, f"+1555{r.randint(1000000, 9999999)}"]),
            "preferred_locales": r.choice([[], [], ["en"], ["de", "en"]]),
            "shipping": {"address": address(r, country), "carrier": None, "name": name, "phone": None,
                         "tracking_number": None} if r.random() < 0.2 else None,
            "tax_exempt": r.choice(["none"] * 8 + ["exempt", "reverse"]), "test_clock": None,
        }
        if r.random() < 0.3:
            customer["metadata"] = {"plan_tier": r.choice(["gold", "silver"]), "crm_id": str(n)}
        if r.random() < 0.05:  # an Accounts v2 account represents some customers
            customer["customer_account"] = "acct_1" + self.ids.new("x")[5:21]
        if r.random() < 0.1:
            customer["balance"] = -r.choice([500, 1000, 2500])  # a credit on the next invoice
        self.add("customers", customer, fields)
        self.remember("customers", customer)
        cid = customer["id"]
        if r.random() < 0.6:
            pm = self.payment_method(customer, created)
            customer["invoice_settings"] = dict(customer["invoice_settings"], default_payment_method=pm["id"])
            self.store.patch("customers", cid, invoice_settings=customer["invoice_settings"])
        elif r.random() < 0.25:  # a legacy card source
            card = self.card(customer)
            self.store.patch("customers", cid, default_source=card["id"])
            customer["default_source"] = card["id"]
        if customer["address"] and customer["address"]["country"] in ("DE", "IE", "FR") and r.random() < 0.5:
            for _ in range(self.big("customer_tax_ids", 11, 13) or 1):  # a group's entities: a few have many
                self.tax_id(customer)
        if customer["balance"]:  # the credit was granted by an adjustment
            self.customer_balance_transaction(customer, customer["balance"], "adjustment", created,
                                              "Credit for a service outage")
        self.store.set_extra(
            cid, invoice_credit_balance={customer["currency"]: -customer["balance"]} if customer["currency"] else {},
            cash_balance={"object": "cash_balance", "available": None, "customer": cid,
                          "customer_account": customer["customer_account"], "livemode": self.livemode,
                          "settings": {"reconciliation_mode": "automatic", "using_merchant_default": True}},
            tax={"automatic_tax": "supported" if customer["address"] else "unrecognized_location",
                 "ip_address": None, "location": {"country": customer["address"]["country"],
                                                  "source": "billing_address", "state": customer["address"]["state"]}
                 if customer["address"] else None, "provider": "stripe"})
        self.emit("customer.created", "customers", cid, created)
        return customer

    def card(self, customer: dict) -> dict:
        r = self.rng
        brand = r.choice(["Visa", "MasterCard", "American Express"])
        addr = customer["address"] or {}
        card = {"id": self.ids.new("card"), "object": "card", "address_city": addr.get("city"),
                "address_country": addr.get("country"), "address_line1": addr.get("line1"),
                "address_line1_check": "pass" if addr else None, "address_line2": addr.get("line2"),
                "address_state": addr.get("state"), "address_zip": addr.get("postal_code"),
                "address_zip_check": "pass" if addr else None, "allow_redisplay": "unspecified", "brand": brand,
                "country": "US", "customer": customer["id"], "cvc_check": "pass", "dynamic_last4": None,
                "exp_month": r.randint(1, 12), "exp_year": r.randint(2027, 2031),
                "fingerprint": self.ids.new("fp")[5:21], "funding": "credit", "last4": f"{r.randint(0, 9999):04d}",
                "metadata": {}, "name": customer["name"], "regulated_status": "unregulated",
                "tokenization_method": None}
        self.add("cards", card)
        self.store.relate("customer_sources", customer["id"], card["id"])
        return card

    def tax_id(self, customer: dict, created: int | None = None) -> dict:
        r = self.rng
        country = (customer["address"] or {}).get("country") or "DE"
        created = created or (self.now if self.instant else customer["created"])
        tax_id = {"id": self.ids.new("txi"), "object": "tax_id", "country": country, "created": created,
                  "customer": customer["id"], "customer_account": None, "livemode": self.livemode,
                  "owner": {"account": None, "application": None, "customer": customer["id"],
                            "customer_account": None, "type": "customer"},
                  "type": "eu_vat", "value": f"{country}{r.randint(10**8, 10**9 - 1)}",
                  "verification": {"status": r.choice(["verified", "pending", "unavailable"]),
                                   "verified_address": None, "verified_name": None}}
        self.add("tax_ids", tax_id)
        self.store.relate("customer_tax_ids", customer["id"], tax_id["id"])
        self.emit("customer.tax_id.created", "tax_ids", tax_id["id"], tax_id["created"])
        return tax_id

    def delete_tax_id(self, tax_id: dict, at: int) -> dict:
        """Gone from the customer's list: `customer.tax_id.deleted` carries it as it was."""
        self.store.unrelate("customer_tax_ids", tax_id["customer"], tax_id["id"])
        self.gone.add(tax_id["id"])
        return self.store.delete("tax_ids", tax_id["id"], when=at if self.recent(at) else None)

    def customer_balance_transaction(self, customer: dict, amount: int, kind: str, created: int,
                                     description: str | None = None, **links: Any) -> dict:
        """A change of the customer's credit balance (negative: credit the customer has)."""
        before = sum(t["amount"] for t in self.store.related_objects("customer_balance_transactions", customer["id"]))
        txn = {"id": self.ids.new("cbtxn"), "object": "customer_balance_transaction", "amount": amount,
               "checkout_session": None, "created": created, "credit_note": None,
               "currency": customer["currency"] or "usd", "customer": customer["id"],
               "customer_account": customer["customer_account"], "description": description,
               "ending_balance": before + amount, "invoice": None, "livemode": self.livemode, "metadata": {},
               "type": kind}
        txn.update(links)
        self.add("customer_balance_transactions", txn)
        self.store.relate("customer_balance_transactions", customer["id"], txn["id"])
        return txn

    def adjust_balance(self, customer: dict, amount: int, at: int) -> dict:
        """A credit (negative) or debit added by hand: its transaction, then `customer.updated` (balance)."""
        customer = self.store.get("customers", customer["id"])
        self.customer_balance_transaction(customer, amount, "adjustment", at, "Goodwill credit")
        return self.change("customers", customer, at, balance=customer["balance"] + amount)

    # --- billing meters (what metered prices bill for)
    def meter(self, created: int | None = None, **fields: Any) -> dict:
        r = self.rng
        created = created or self.when()
        name = r.choice(["api_requests", "storage_gb_hours", "emails_sent", "tokens"])
        meter = {"id": "mtr_1" + self.ids.new("x")[5:], "object": "billing.meter", "created": created,
                 "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
                 "default_aggregation": {"formula": r.choice(["sum", "sum", "count", "last"])},
                 "display_name": name.replace("_", " ").title(), "event_name": f"{name}_{r.randint(1, 999)}",
                 "event_time_window": None, "livemode": self.livemode,
                 "status": "active", "status_transitions": {"deactivated_at": None}, "updated": created,
                 "value_settings": {"event_payload_key": "value"}}
        self.add("meters", meter, fields)
        self.remember("meters", meter)
        self.emit("billing.meter.created", "meters", meter["id"], created)
        return meter

    # --- shipping rates and entitlement features
    def shipping_rate(self, created: int | None = None, **fields: Any) -> dict:
        r = self.rng
        created = created or self.when()
        name, amount, low, high = r.choice([("Standard shipping", 500, 3, 5), ("Express shipping", 1500, 1, 2),
                                            ("Free shipping", 0, 5, 7)])
        rate = {"id": self.ids.new("shr"), "object": "shipping_rate",
                "active": self.vary("shipping_rate_active", [True] * 4 + [False]), "created": created,
                "delivery_estimate": {"maximum": {"unit": "business_day", "value": high},
                                      "minimum": {"unit": "business_day", "value": low}},
                "display_name": name, "fixed_amount": {"amount": amount, "currency": r.choice(["usd", "usd", "eur"])},
                "livemode": self.livemode, "metadata": {}, "tax_behavior": r.choice(["exclusive", "unspecified"]),
                "tax_code": "txcd_92010001", "type": "fixed_amount"}
        self._tax_code("txcd_92010001")
        return self.remember("shipping_rates", self.add("shipping_rates", rate, fields))

    def entitlement_feature(self, created: int | None = None, **fields: Any) -> dict:
        name = self.rng.choice(["SSO", "Audit log", "API access", "Priority support", "Data export", "Sandbox"])
        key = f"{name.lower().replace(' ', '_')}_{self.rng.randint(1, 999)}"
        feature = {"id": self.ids.new("feat"), "object": "entitlements.feature", "active": True,
                   "livemode": self.livemode, "lookup_key": key, "metadata": {}, "name": name}
        self.store.set_extra(feature["id"], created=created or self.when())  # orders the list; not shown
        return self.remember("entitlement_features", self.add("entitlement_features", feature, fields))

    def attach_feature(self, product: dict, feature: dict | None = None) -> dict:
        """A product feature: the product grants an entitlement feature (no event announces it)."""
        feature = feature or self.pick("entitlement_features", lambda f: f["active"]) or self.entitlement_feature()
        attached = {"id": self.ids.new("prodft"), "object": "product_feature",
                    "entitlement_feature": self.store.get("entitlement_features", feature["id"]),
                    "livemode": self.livemode}
        self.add("product_features", attached)
        self.store.relate("product_features", product["id"], attached["id"])
        return attached

    def _tax_code(self, code: str) -> None:
        if code not in self.store.collections["tax_codes"].objects:
            self.add("tax_codes", {"id": code, "object": "tax_code", "description": TAX_CODES[code][1],
                                   "name": TAX_CODES[code][0]})

    # --- catalog
    def product(self, created: int | None = None, **fields: Any) -> dict:
        r = self.rng
        created = created or self.when()
        good = r.random() < 0.2
        name = r.choice(["Starter", "Team", "Scale", "Add-on", "Seat", "Support", "Storage", "Workshop"])
        product = {
            "id": self.ids.new("prod"), "object": "product",
            "active": self.vary("product_active", [True] * 9 + [False]), "created": created,
            "default_price": None, "description": r.choice([None, f"{name} plan for growing teams"]),
            "images": [] if r.random() < 0.8 else [f"https://files.example.com/{name.lower()}.png"],
            "livemode": self.livemode,
            "marketing_features": [] if r.random() < 0.7 else [{"name": "Unlimited projects"}, {"name": "SSO"}],
            "metadata": {}, "name": f"{name} {r.randint(1, 9999)}",
            "package_dimensions": {"height": 5.0, "length": 20.0, "weight": 12.5, "width": 15.0} if good else None,
            "shippable": (r.random() < 0.8) if good else None, "statement_descriptor": None,
            "tax_code": r.choice([None, *TAX_CODES]), "type": "good" if good else "service",
            "unit_label": r.choice([None, None, "seat"]), "updated": created,
            "url": f"https://shop.example.com/{name.lower()}" if good else None,
        }
        self.add("products", product, fields)
        if product["tax_code"]:
            self._tax_code(product["tax_code"])
        self.remember("products", product)
        self.emit("product.created", "products", product["id"], created)
        if r.random() < 0.4:
            for _ in range(r.randint(1, 3)):
                self.attach_feature(product)
        return product

    def price(self, product: dict | None = None, recurring: bool | None = None, currency: str | None = None,
              interval: str | None = None, created: int | None = None, **fields: Any) -> dict:
        """A price; recurring ones are also plans (same id), as Stripe lists them on both endpoints."""
        r = self.rng
        product = product or self.pick("products") or self.product()
        created = max(created, product["created"]) if created else self.when(product["created"])
        recurring = r.random() < 0.65 if recurring is None else recurring
        currency = currency or r.choice(CURRENCIES)
        scheme = "tiered" if r.random() < 0.12 else "per_unit"
        metered = recurring and r.random() < 0.15
        amount = None if scheme == "tiered" else r.choice([500, 900, 1500, 2900, 4900, 9900])
        price = {
            "id": self.ids.new("price"), "object": "price",
            "active": self.vary("price_active", [True] * 14 + [False]), "billing_scheme": scheme,
            "created": created, "currency": currency, "custom_unit_amount": None, "livemode": self.livemode,
            "lookup_key": f"{product['name'].split()[0].lower()}_{r.randint(1, 999)}" if r.random() < 0.3 else None,
            "metadata": {}, "nickname": r.choice([None, None, "Monthly", "Annual", "Launch price"]),
            "product": product["id"],
            "recurring": {"interval": interval or r.choice(["month", "month", "month", "year"]), "interval_count": 1,
                          "meter": (self.pick("meters") or self.meter(created=self.before(created)))["id"]
                          if metered else None,
                          "trial_period_days": r.choice([None, None, 14]),
                          "usage_type": "metered" if metered else "licensed"} if recurring else None,
            "tax_behavior": r.choice(["unspecified", "exclusive", "inclusive"]),
            "tiers_mode": r.choice(["graduated", "volume"]) if scheme == "tiered" else None,
            "transform_quantity": {"divide_by": 10, "round": "up"} if scheme == "per_unit" and r.random() < 0.04
            else None,
            "type": "recurring" if recurring else "one_time", "unit_amount": amount,
            "unit_amount_decimal": _decimal(amount),
        }
        self.add("prices", price, fields)
        self._price_extras(price)
        self.remember("prices", price)
        self.emit("price.created", "prices", price["id"], created)
        if recurring:
            self.plan_of(price, emit=True)
        else:
            self.remember(f"one_time_{currency}", price)
        if product["default_price"] is None and price["active"] and product["id"] not in self.gone:
            when = max(created, self.touched.get(product["id"], product["created"]))
            self.change("products", product, when, default_price=price["id"], updated=when)
        return price

    def _price_extras(self, price: dict) -> None:
        r = self.rng
        if price["billing_scheme"] == "tiered":
            first = r.choice([1000, 2000, 5000])
            tiers = [{"flat_amount": r.choice([None, 0, 900]), "flat_amount_decimal": None, "unit_amount": first,
                      "unit_amount_decimal": str(first), "up_to": 10},
                     {"flat_amount": None, "flat_amount_decimal": None, "unit_amount": first // 2,
                      "unit_amount_decimal": str(first // 2), "up_to": 100},
                     {"flat_amount": None, "flat_amount_decimal": None, "unit_amount": first // 4,
                      "unit_amount_decimal": str(first // 4), "up_to": None}]
            for tier in tiers:
                tier["flat_amount_decimal"] = _decimal(tier["flat_amount"])
            self.store.set_extra(price["id"], tiers=tiers)
        options = {price["currency"]: {"custom_unit_amount": None, "tax_behavior": price["tax_behavior"],
                                       "unit_amount": price["unit_amount"],
                                       "unit_amount_decimal": price["unit_amount_decimal"]}}
        if price["unit_amount"] is not None and r.random() < 0.2:
            for other in {"usd", "eur", "gbp"} - {price["currency"]}:
                converted = round(price["unit_amount"] * 0.9)
                options[other] = {"custom_unit_amount": None, "tax_behavior": price["tax_behavior"],
                                  "unit_amount": converted, "unit_amount_decimal": str(converted)}
        self.store.set_extra(price["id"], currency_options=options)

    def plan_of(self, price: dict, emit: bool = False) -> dict:
        """The plan view of a recurring price (same id): what subscription items carry as `plan`."""
        recurring = price["recurring"]
        plan = {
            "id": price["id"], "object": "plan", "active": price["active"], "amount": price["unit_amount"],
            "amount_decimal": price["unit_amount_decimal"], "billing_scheme": price["billing_scheme"],
            "created": price["created"], "currency": price["currency"], "interval": recurring["interval"],
            "interval_count": recurring["interval_count"], "livemode": price["livemode"],
            "metadata": price["metadata"], "meter": recurring["meter"], "nickname": price["nickname"],
            "product": price["product"], "tiers_mode": price["tiers_mode"], "transform_usage": price[
                "transform_quantity"], "trial_period_days": recurring["trial_period_days"],
            "usage_type": recurring["usage_type"],
        }
        if emit and price["id"] not in self.store.collections["plans"].objects:
            self.add("plans", plan)
            self.remember(f"recurring_{price['currency']}_{recurring['interval']}", price)
            if self.store.extra(price["id"], "tiers"):
                self.store.set_extra(plan["id"], tiers=self.store.extra(price["id"], "tiers"))
            self.emit("plan.created", "plans", plan["id"], price["created"])
        return plan

    def plan(self, product: dict | None = None, created: int | None = None, **fields: Any) -> dict:
        """A plan made with the legacy Plans API: a recurring price too (`plan_` id)."""
        r = self.rng
        product = product or self.pick("products") or self.product()
        created = created or self.when(product["created"])
        amount = r.choice([900, 1900, 4900, 19900])
        price = {
            "id": self.ids.new("plan"), "object": "price", "active": True, "billing_scheme": "per_unit",
            "created": created, "currency": "usd", "custom_unit_amount": None, "livemode": self.livemode,
            "lookup_key": None, "metadata": {}, "nickname": r.choice([None, "Legacy monthly", "Legacy annual"]),
            "product": product["id"],
            "recurring": {"interval": r.choice(["month", "year"]), "interval_count": 1, "meter": None,
                          "trial_period_days": None, "usage_type": "licensed"},
            "tax_behavior": "unspecified", "tiers_mode": None, "transform_quantity": None, "type": "recurring",
            "unit_amount": amount, "unit_amount_decimal": str(amount),
        }
        self.add("prices", price)
        self._price_extras(price)
        self.remember("prices", price)
        plan = self.plan_of(price)
        self.add("plans", plan, fields)
        self.remember(f"recurring_usd_{price['recurring']['interval']}", price)
        self.emit("plan.created", "plans", plan["id"], created)
        self.emit("price.created", "prices", price["id"], created)
        return plan

    def coupon(self, created: int | None = None, **fields: Any) -> dict:
        r = self.rng
        created = created or self.when()
        percent = r.random() < 0.7
        duration = r.choice(["once", "forever", "repeating"])
        coupon = {
            "id": "".join(r.choices("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", k=8)), "object": "coupon",
            "amount_off": None if percent else r.choice([500, 1000]), "created": created,
            "currency": None if percent else "usd", "duration": duration,
            "duration_in_months": 3 if duration == "repeating" else None, "livemode": self.livemode,
            "max_redemptions": r.choice([None, None, 100]), "metadata": {}, "name": f"Promo {r.randint(1, 99)}",
            "percent_off": float(r.choice([10, 20, 25, 12.5])) if percent else None,
            "redeem_by": created + 365 * 86400 if r.random() < 0.2 else None, "times_redeemed": r.randint(0, 50),
            "valid": True,
        }
        coupon["valid"] = coupon["redeem_by"] is None or coupon["redeem_by"] > self.now
        self.add("coupons", coupon, fields)
        products = self.made.get("products", [])
        self.store.set_extra(coupon["id"], applies_to={"products": [p["id"] for p in products[:2]]}
                             if products and r.random() < 0.3 else None,
                             currency_options={"eur": {"amount_off": coupon["amount_off"]}}
                             if coupon["amount_off"] else None)
        self.remember("coupons", coupon)
        self.emit("coupon.created", "coupons", coupon["id"], created)
        return coupon

    def promotion_code(self, coupon: dict | None = None, customer: dict | None = None, created: int | None = None,
                       **fields: Any) -> dict:
        r = self.rng
        coupon = coupon or self.pick("coupons") or self.coupon()
        created = created or self.when(coupon["created"])
        customer = customer or (self.pick("customers") if r.random() < 0.2 else None)
        promo = {
            "id": self.ids.new("promo"), "object": "promotion_code",
            "active": self.vary("promotion_code_active", [True] * 6 + [False]),
            "code": f"SAVE{r.randint(100, 99999)}", "created": created,
            "customer": customer["id"] if customer else None,
            "customer_account": customer["customer_account"] if customer else None,
            "expires_at": created + 90 * 86400 if r.random() < 0.3 else None, "livemode": self.livemode,
            "max_redemptions": r.choice([None, 10]), "metadata": {},
            "promotion": {"coupon": coupon["id"], "type": "coupon"},
            "restrictions": {"currency_options": {}, "first_time_transaction": r.random() < 0.3,
                             "minimum_amount": r.choice([None, 5000]), "minimum_amount_currency": None},
            "times_redeemed": r.randint(0, 10),
        }
        if promo["restrictions"]["minimum_amount"]:
            promo["restrictions"]["minimum_amount_currency"] = "usd"
        self.add("promotion_codes", promo, fields)
        self.remember("promotion_codes", promo)
        self.emit("promotion_code.created", "promotion_codes", promo["id"], created)
        return promo

    def tax_rate(self, created: int | None = None, **fields: Any) -> dict:
        r = self.rng
        created = created or self.when()
        country, name, pct, kind = r.choice([("DE", "VAT", 19.0, "vat"), ("FR", "VAT", 20.0, "vat"),
                                             ("IE", "VAT", 23.0, "vat"), ("US", "Sales Tax", 8.25, "sales_tax"),
                                             ("AU", "GST", 10.0, "gst")])
        rate = {
            "id": self.ids.new("txr"), "object": "tax_rate",
            "active": self.vary("tax_rate_active", [True] * 9 + [False]), "country": country,
            "created": created, "description": f"{name} {country}", "display_name": name,
            "effective_percentage": pct, "flat_amount": None,
            "inclusive": self.vary("tax_rate_inclusive", [False, True, False]),
            "jurisdiction": country if kind != "sales_tax" else "Texas",
            "jurisdiction_level": "state" if kind == "sales_tax" else "country", "livemode": self.livemode,
            "metadata": {}, "percentage": pct, "rate_type": "percentage", "state": "TX" if country == "US" else None,
            "tax_type": kind,
        }
        self.add("tax_rates", rate, fields)
        self.remember("tax_rates", rate)
        self.emit("tax_rate.created", "tax_rates", rate["id"], created)
        return rate

    def discount(self, coupon: dict, customer: dict, start: int, **links: Any) -> dict:
        promo = self.pick("promotion_codes", lambda p: p["promotion"]["coupon"] == coupon["id"])
        discount = {"id": self.ids.new("di"), "object": "discount", "checkout_session": None,
                    "customer": customer["id"], "customer_account": customer["customer_account"],
                    "end": start + 90 * 86400 if coupon["duration"] == "repeating" else None, "invoice": None,
                    "invoice_item": None, "promotion_code": promo["id"] if promo else None,
                    "source": {"coupon": coupon["id"], "type": "coupon"}, "start": start, "subscription": None,
                    "subscription_item": None}
        discount.update(links)
        return self.add("discounts", discount)
