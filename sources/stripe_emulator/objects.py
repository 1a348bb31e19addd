"""The emulated Stripe objects: one entry each, the only place that says what the emulator serves.

An entry names the object as Stripe does (list path, `object` value, restricted-key permission,
event prefix, the field its list orders and filters by), lists the documented filters of its list
endpoint and how each applies, the fields `expand[]` may turn into objects (`expandable`, as in
stripe-python's `ExpandableField`s) and those Stripe returns only when expanded (`includable`),
the sub-lists it embeds truncated and where they page, and the `WorldBuilder` method that creates
one (`generator`, with its share of the world's `scale`). Server, store, world and tests read it.

Entries without a `path` are not listed at the top level: sub-list items (invoice lines...) and
objects only reached through `expand[]` (payment methods, discounts...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import ApiError
from .filters import AnyOf, Choice, Equals, Filter, Flag, ListRules, Range, StoreView, Where, value_at

CONNECTED_ACCOUNTS = "rak_connected_account_read"  # `/v1/accounts` and each account's objects there
EMBED_LIMIT = 10  # Stripe embeds the first 10 items of a sub-list and says `has_more`


@dataclass(frozen=True)
class SubList:
    """A list Stripe embeds in its parent truncated to the first 10 items, paged in full at `path`."""

    field: str  # the parent's field: {"object": "list", "data": [first 10], "has_more": ..., "url": ...}
    item: str  # the entry of its items
    path: str  # where the whole list pages; "{id}" is the parent's id
    maximum: int | None = None  # Stripe's own cap on the number of items (20 subscription items)


def _related(relation: str) -> Callable[[StoreView, dict], Any]:
    """An includable list computed from the store (a charge's refunds, a customer's subscriptions)."""
    def produce(store: StoreView, obj: dict) -> dict:
        resource, url = RELATIONS[relation]
        ids = store.related(relation, obj["id"])
        data = [store.rendered(resource, i) for i in ids[:EMBED_LIMIT]]
        return {"object": "list", "data": data, "has_more": len(ids) > EMBED_LIMIT, "url": url.format(id=obj["id"])}
    return produce


def _extra(name: str, default: Any = None) -> Callable[[StoreView, dict], Any]:
    """An includable value kept beside the object (a price's tiers, a customer's cash balance)."""
    return lambda store, obj: store.extra(obj["id"], name, default)


# Includable lists computed from other objects: relation -> (its items' entry, its url)
RELATIONS = {
    "charge_refunds": ("refunds", "/v1/charges/{id}/refunds"),
    "customer_subscriptions": ("subscriptions", "/v1/customers/{id}/subscriptions"),
    "customer_tax_ids": ("tax_ids", "/v1/customers/{id}/tax_ids"),
    "customer_sources": ("cards", "/v1/customers/{id}/sources"),
    "invoice_payments": ("invoice_payments", "/v1/invoice_payments?invoice={id}"),  # the list filtered
    "customer_payment_methods": ("payment_methods", "/v1/customers/{id}/payment_methods"),
    "customer_balance_transactions": ("customer_balance_transactions", "/v1/customers/{id}/balance_transactions"),
    "product_features": ("product_features", "/v1/products/{id}/features"),
    "quote_line_items": ("items", "/v1/quotes/{id}/line_items"),
    "file_links": ("file_links", "/v1/file_links?file={id}"),  # the list filtered: a file's links
    "checkout_session_line_items": ("items", "/v1/checkout/sessions/{id}/line_items"),
    "payment_link_line_items": ("items", "/v1/payment_links/{id}/line_items"),
    # a connected account's, read by its platform: the parent is the account (another store; see connect.py)
    "account_persons": ("persons", "/v1/accounts/{id}/persons"),
    "account_external_accounts": ("bank_accounts", "/v1/accounts/{id}/external_accounts"),  # and debit cards
}
ACCOUNT_RELATIONS = frozenset(r for r, (_, url) in RELATIONS.items() if url.startswith("/v1/accounts/{id}/"))


@dataclass(frozen=True)
class EmulatedObject:
    name: str  # the store's name for its objects: Stripe's URL word (`invoiceitems`, `subscription_items`)
    object: str  # Stripe's `object` value
    path: str | None = None  # the list endpoint, if it lists at the top level
    retrieve: str | None = None  # the single-object endpoint ("{id}")
    permission: str | None = None  # restricted-key permission to read it
    events: str | None = None  # event type prefix (`customer.subscription`); None: no events of its own
    created_field: str = "created"  # the field its list orders by and `created[...]` filters on
    created_filter: bool = True  # the list accepts `created`
    filters: Mapping[str, Filter] = field(default_factory=dict)  # documented filters beyond `created`
    rules: ListRules = ListRules()
    expandable: frozenset[str] = frozenset()  # dotted paths of ids `expand[]` turns into objects
    includable: Mapping[str, Callable[[StoreView, dict], Any]] = field(default_factory=dict)
    sub_lists: tuple[SubList, ...] = ()
    parent: str | None = None  # sub-list items: the parent's entry
    deletable: bool = False  # `<events>.deleted` exists and the object leaves its list
    announces_updates: bool = True  # Stripe sends `<events>.updated` when it changes
    generator: str | None = None  # WorldBuilder method creating one (dependents come with their parent)
    # objects per unit of `scale`; the dependents each brings (lines, invoice items, payment methods,
    # balance transactions, events) make a world of about `scale` objects in all
    share: float = 0.0
    livemode: bool = True  # carries `livemode` (refunds, balance transactions... do not)


def _items(store: StoreView, subscription: dict) -> list[dict]:
    return store.children("subscription_items", subscription["id"])


def _subscription_has(key: str) -> Callable[[StoreView, dict, Any], bool]:
    return lambda store, obj, value: any(value_at(item, key) == value for item in _items(store, obj))


def _item_period(pick: Callable, key: str) -> Callable[[StoreView, dict], int | None]:
    return lambda store, obj: pick((i[key] for i in _items(store, obj)), default=None)


def _event_types(store: StoreView, event: dict, patterns: Any) -> bool:
    return any(p.match(event["type"]) for p in patterns)


SUBSCRIPTION_STATUSES = ("active", "all", "canceled", "ended", "incomplete", "incomplete_expired", "past_due",
                         "paused", "trialing", "unpaid")


def _subscription_status(store: StoreView, obj: dict, status: str) -> bool:
    if status == "all":
        return True
    if status == "ended":
        return obj["status"] in ("canceled", "incomplete_expired")
    return obj["status"] == status


def _hidden_test_clock(store: StoreView, obj: dict, params: dict) -> bool:
    return obj.get("test_clock") is not None


def _hidden_canceled(store: StoreView, obj: dict, params: dict) -> bool:
    return obj["status"] == "canceled"  # "all subscriptions that have not been canceled", says Stripe


def _payout_settled(store: StoreView, txn: dict, payout: str) -> bool:
    return store.settled_by.get(txn["id"]) == payout


def _automatic_payout(store: StoreView, params: dict) -> None:
    payout = store.collections["payouts"].objects.get(params.get("payout", ""))
    if payout is not None and not payout["automatic"]:
        raise ApiError(400, "Balance transaction history can only be filtered on automatic transfers, not manual.",
                       param="payout")


PERSON_ROLES = ("authorizer", "director", "executive", "legal_guardian", "owner", "representative")


def _relationship(store: StoreView, person: dict, wanted: dict) -> bool:
    """`relationship[owner]=true`: the people who hold each role asked for (or, `false`, do not)."""
    return all(bool(person["relationship"].get(role)) is (value == "true") for role, value in wanted.items())


def _recurring(store: StoreView, price: dict, wanted: dict) -> bool:
    recurring = price.get("recurring")
    return recurring is not None and all(recurring.get(k) == v for k, v in wanted.items())


OBJECTS: tuple[EmulatedObject, ...] = (
    # --- catalog and customers (built first: everything else points at them)
    EmulatedObject(
        "customers", "customer", "/v1/customers", "/v1/customers/{id}", "rak_customer_read", "customer",
        filters={"email": Equals("email"), "test_clock": Equals("test_clock")},
        rules=ListRules(hidden=((_hidden_test_clock, ("test_clock",)),)),
        expandable=frozenset({"default_source", "invoice_settings.default_payment_method", "test_clock"}),
        includable={"sources": _related("customer_sources"), "subscriptions": _related("customer_subscriptions"),
                    "tax_ids": _related("customer_tax_ids"), "cash_balance": _extra("cash_balance"),
                    "invoice_credit_balance": _extra("invoice_credit_balance", {}), "tax": _extra("tax")},
        deletable=True, generator="customer", share=0.045,
    ),
    EmulatedObject(
        "products", "product", "/v1/products", "/v1/products/{id}", "rak_product_read", "product",
        filters={"active": Flag("active"), "ids": AnyOf("id"), "shippable": Flag("shippable"),
                 "type": Choice("type", ("good", "service")), "url": Equals("url")},
        rules=ListRules(exclusive=(("ids", "starting_after"), ("ids", "ending_before"))),
        expandable=frozenset({"default_price", "tax_code"}), deletable=True, generator="product", share=0.006,
    ),
    EmulatedObject(
        "meters", "billing.meter", "/v1/billing/meters", "/v1/billing/meters/{id}", "rak_billing_meter_read",
        "billing.meter", created_filter=False, filters={"status": Choice("status", ("active", "inactive"))},
        generator="meter", share=0.001,  # what metered prices bill for: before the prices
    ),
    EmulatedObject(
        "prices", "price", "/v1/prices", "/v1/prices/{id}", "rak_price_read", "price",
        filters={"active": Flag("active"), "currency": Equals("currency"), "lookup_keys": AnyOf("lookup_key", 10),
                 "product": Equals("product"), "type": Choice("type", ("one_time", "recurring")),
                 "recurring": Where(_recurring, kind="hash:interval,meter,usage_type")},
        expandable=frozenset({"product"}),
        includable={"tiers": _extra("tiers"), "currency_options": _extra("currency_options")},
        deletable=True, generator="price", share=0.01,
    ),
    EmulatedObject(
        "plans", "plan", "/v1/plans", "/v1/plans/{id}", "rak_plan_read", "plan",
        filters={"active": Flag("active"), "product": Equals("product")},
        expandable=frozenset({"product"}), includable={"tiers": _extra("tiers")},
        deletable=True, generator="plan", share=0.004,
    ),
    EmulatedObject(
        "coupons", "coupon", "/v1/coupons", "/v1/coupons/{id}", "rak_coupon_read", "coupon",
        includable={"applies_to": _extra("applies_to"), "currency_options": _extra("currency_options")},
        deletable=True, generator="coupon", share=0.003,
    ),
    EmulatedObject(
        "promotion_codes", "promotion_code", "/v1/promotion_codes", "/v1/promotion_codes/{id}",
        "rak_promotion_code_read", "promotion_code",
        filters={"active": Flag("active"), "code": Equals("code", casefold=True),
                 "coupon": Equals("promotion.coupon"), "customer": Equals("customer"),
                 "customer_account": Equals("customer_account")},
        expandable=frozenset({"customer", "promotion.coupon"}), generator="promotion_code", share=0.003,
    ),
    EmulatedObject(
        "tax_rates", "tax_rate", "/v1/tax_rates", "/v1/tax_rates/{id}", "rak_tax_rate_read", "tax_rate",
        filters={"active": Flag("active"), "inclusive": Flag("inclusive")}, generator="tax_rate", share=0.0015,
    ),
    EmulatedObject(
        "shipping_rates", "shipping_rate", "/v1/shipping_rates", "/v1/shipping_rates/{id}", "rak_shipping_rate_read",
        filters={"active": Flag("active"), "currency": Equals("fixed_amount.currency")},
        expandable=frozenset({"tax_code"}), generator="shipping_rate", share=0.002,
    ),
    EmulatedObject(
        "entitlement_features", "entitlements.feature", "/v1/entitlements/features",
        "/v1/entitlements/features/{id}", "rak_entitlements_feature_read", created_filter=False,
        filters={"archived": Where(lambda s, o, v: (not o["active"]) is v, kind="boolean"),
                 "lookup_key": Equals("lookup_key")},
        generator="entitlement_feature", share=0.001,
    ),
    # --- billing
    EmulatedObject(
        "subscriptions", "subscription", "/v1/subscriptions", "/v1/subscriptions/{id}", "rak_subscription_read",
        "customer.subscription",
        filters={
            "automatic_tax": Where(lambda s, o, v: o["automatic_tax"]["enabled"] is (v.get("enabled") == "true"),
                                   kind="hash:enabled"),
            "collection_method": Choice("collection_method", ("charge_automatically", "send_invoice")),
            "current_period_end": Range("current_period_end", of=_item_period(min, "current_period_end")),
            "current_period_start": Range("current_period_start", of=_item_period(max, "current_period_start")),
            "customer": Equals("customer"), "customer_account": Equals("customer_account"),
            "plan": Where(_subscription_has("plan")), "price": Where(_subscription_has("price")),
            "status": Where(_subscription_status, choices=SUBSCRIPTION_STATUSES),
            "test_clock": Equals("test_clock"),
        },
        # Without `status` Stripe lists the subscriptions that are not canceled; subscriptions on a
        # test clock only come with `test_clock` or `customer`.
        rules=ListRules(hidden=((_hidden_canceled, ("status",)), (_hidden_test_clock, ("test_clock", "customer")))),
        expandable=frozenset({"application", "automatic_tax.liability.account", "billing_schedules.applies_to.price",
                              "cancellation_details.feedback_option", "customer", "default_payment_method",
                              "default_source", "discounts", "invoice_settings.account_tax_ids",
                              "invoice_settings.issuer.account", "latest_invoice", "on_behalf_of",
                              "pending_setup_intent", "pending_update.discounts", "schedule", "test_clock",
                              "transfer_data.destination"}),
        sub_lists=(SubList("items", "subscription_items", "/v1/subscription_items?subscription={id}", maximum=20),),
        generator="subscription", share=0.022,
    ),
    EmulatedObject(
        "subscription_items", "subscription_item", "/v1/subscription_items", "/v1/subscription_items/{id}",
        "rak_subscription_read", created_filter=False, filters={},
        rules=ListRules(required=("subscription",)),
        expandable=frozenset({"discounts"}), parent="subscriptions", livemode=False,
    ),
    EmulatedObject(
        "invoices", "invoice", "/v1/invoices", "/v1/invoices/{id}", "rak_invoice_read", "invoice",
        filters={"collection_method": Choice("collection_method", ("charge_automatically", "send_invoice")),
                 "customer": Equals("customer"), "customer_account": Equals("customer_account"),
                 "due_date": Range("due_date"),
                 "status": Choice("status", ("draft", "open", "paid", "uncollectible", "void")),
                 "subscription": Equals("parent.subscription_details.subscription")},
        expandable=frozenset({"account_tax_ids", "application", "automatic_tax.liability.account", "customer",
                              "default_payment_method", "default_source", "discounts", "from_invoice.invoice",
                              "issuer.account", "latest_revision", "on_behalf_of",
                              "parent.subscription_details.subscription", "shipping_cost.shipping_rate", "test_clock",
                              "total_discount_amounts.discount",
                              "total_pretax_credit_amounts.credit_balance_transaction",
                              "total_pretax_credit_amounts.discount"}),
        includable={"payments": _related("invoice_payments")},
        sub_lists=(SubList("lines", "invoice_line_items", "/v1/invoices/{id}/lines"),),
        deletable=True, generator="invoice", share=0.028,
    ),
    EmulatedObject(
        "invoice_line_items", "line_item", permission="rak_invoice_read", created_filter=False,
        expandable=frozenset({"discount_amounts.discount", "discounts",
                              "pretax_credit_amounts.credit_balance_transaction", "pretax_credit_amounts.discount",
                              "pricing.price_details.price", "subscription"}),
        parent="invoices",
    ),
    EmulatedObject(
        "invoiceitems", "invoiceitem", "/v1/invoiceitems", "/v1/invoiceitems/{id}", "rak_invoice_read", "invoiceitem",
        created_field="date",  # invoice items have `date` where other objects have `created`
        filters={"customer": Equals("customer"), "customer_account": Equals("customer_account"),
                 "invoice": Equals("invoice"),
                 "pending": Where(lambda s, o, v: (o["invoice"] is None) is v, kind="boolean")},
        expandable=frozenset({"customer", "discounts", "invoice", "pricing.price_details.price",
                              "proration_details.discount_amounts.discount", "test_clock"}),
        deletable=True, announces_updates=False,  # the pinned version has no `invoiceitem.updated`
        generator="invoiceitem", share=0.003,  # pending ones; invoices bring theirs
    ),
    EmulatedObject(
        "credit_notes", "credit_note", "/v1/credit_notes", "/v1/credit_notes/{id}", "rak_credit_note_read",
        "credit_note",
        filters={"customer": Equals("customer"), "customer_account": Equals("customer_account"),
                 "invoice": Equals("invoice")},
        expandable=frozenset({"customer", "customer_balance_transaction", "discount_amounts.discount", "invoice",
                              "pretax_credit_amounts.credit_balance_transaction", "pretax_credit_amounts.discount",
                              "refunds.refund", "shipping_cost.shipping_rate"}),
        sub_lists=(SubList("lines", "credit_note_line_items", "/v1/credit_notes/{id}/lines"),),
        generator="credit_note", share=0.006,
    ),
    EmulatedObject(
        "credit_note_line_items", "credit_note_line_item", permission="rak_credit_note_read", created_filter=False,
        expandable=frozenset({"discount_amounts.discount", "pretax_credit_amounts.credit_balance_transaction",
                              "pretax_credit_amounts.discount"}),
        parent="credit_notes",
    ),
    EmulatedObject(
        "quotes", "quote", "/v1/quotes", "/v1/quotes/{id}", "rak_quote_read", "quote",
        created_filter=False,  # its list takes no `created`
        filters={"customer": Equals("customer"), "customer_account": Equals("customer_account"),
                 "status": Choice("status", ("accepted", "canceled", "draft", "open")),
                 "test_clock": Equals("test_clock")},
        expandable=frozenset({"application", "automatic_tax.liability.account", "customer", "default_tax_rates",
                              "discounts", "from_quote.quote", "invoice", "invoice_settings.issuer.account",
                              "on_behalf_of", "subscription", "subscription_schedule", "test_clock",
                              "transfer_data.destination"}),
        includable={"line_items": _related("quote_line_items")}, generator="quote", share=0.003,
    ),
    EmulatedObject(
        "subscription_schedules", "subscription_schedule", "/v1/subscription_schedules",
        "/v1/subscription_schedules/{id}", "rak_subscription_schedule_read", "subscription_schedule",
        filters={"canceled_at": Range("canceled_at"), "completed_at": Range("completed_at"),
                 "customer": Equals("customer"), "customer_account": Equals("customer_account"),
                 "released_at": Range("released_at"),
                 "scheduled": Where(lambda s, o, v: (o["status"] == "not_started") is v, kind="boolean")},
        expandable=frozenset({"application", "customer", "default_settings.automatic_tax.liability.account",
                              "default_settings.default_payment_method",
                              "default_settings.invoice_settings.account_tax_ids",
                              "default_settings.invoice_settings.issuer.account", "default_settings.on_behalf_of",
                              "default_settings.transfer_data.destination", "phases.add_invoice_items.discounts.coupon",
                              "phases.add_invoice_items.discounts.discount",
                              "phases.add_invoice_items.discounts.promotion_code", "phases.add_invoice_items.price",
                              "phases.automatic_tax.liability.account", "phases.default_payment_method",
                              "phases.discounts.coupon", "phases.discounts.discount", "phases.discounts.promotion_code",
                              "phases.invoice_settings.account_tax_ids", "phases.invoice_settings.issuer.account",
                              "phases.items.discounts.coupon", "phases.items.discounts.discount",
                              "phases.items.discounts.promotion_code", "phases.items.plan", "phases.items.price",
                              "phases.on_behalf_of", "phases.transfer_data.destination", "subscription",
                              "test_clock"}),
        generator="subscription_schedule", share=0.003,
    ),
    EmulatedObject(
        "credit_grants", "billing.credit_grant", "/v1/billing/credit_grants", "/v1/billing/credit_grants/{id}",
        "rak_billing_credit_grant_read", "billing.credit_grant", created_filter=False,
        filters={"customer": Equals("customer"), "customer_account": Equals("customer_account")},
        expandable=frozenset({"customer", "test_clock"}), generator="credit_grant", share=0.002,
    ),
    # --- payments
    EmulatedObject(
        "payment_intents", "payment_intent", "/v1/payment_intents", "/v1/payment_intents/{id}",
        "rak_payment_intent_read", "payment_intent",
        filters={"customer": Equals("customer"), "customer_account": Equals("customer_account")},
        expandable=frozenset({"application", "customer", "latest_charge", "on_behalf_of", "payment_method",
                              "payment_record", "review", "source", "transfer_data.destination"}),
        generator="payment_intent", share=0.05,
    ),
    EmulatedObject(
        "charges", "charge", "/v1/charges", "/v1/charges/{id}", "rak_charge_read", "charge",
        filters={"customer": Equals("customer"), "payment_intent": Equals("payment_intent"),
                 "transfer_group": Equals("transfer_group")},
        expandable=frozenset({"application", "application_fee", "balance_transaction", "customer",
                              "failure_balance_transaction", "on_behalf_of", "outcome.rule", "payment_intent",
                              "payment_method_details.bancontact.generated_sepa_debit",
                              "payment_method_details.bancontact.generated_sepa_debit_mandate",
                              "payment_method_details.card.mandate",
                              "payment_method_details.ideal.generated_sepa_debit",
                              "payment_method_details.ideal.generated_sepa_debit_mandate",
                              "payment_method_details.sofort.generated_sepa_debit",
                              "payment_method_details.sofort.generated_sepa_debit_mandate",
                              "payment_method_details.us_bank_account.mandate", "review", "source_transfer",
                              "transfer", "transfer_data.destination"}),
        includable={"refunds": _related("charge_refunds")},
        generator="charge", share=0.016,  # payment intents bring most charges
    ),
    EmulatedObject(
        "refunds", "refund", "/v1/refunds", "/v1/refunds/{id}", "rak_refund_read", "refund",
        filters={"charge": Equals("charge"), "payment_intent": Equals("payment_intent")},
        expandable=frozenset({"balance_transaction", "charge", "customer", "failure_balance_transaction",
                              "payment_intent", "payment_method", "source_transfer_reversal", "transfer_reversal"}),
        generator="refund", share=0.011, livemode=False,
    ),
    EmulatedObject(
        "disputes", "dispute", "/v1/disputes", "/v1/disputes/{id}", "rak_dispute_read", "charge.dispute",
        filters={"charge": Equals("charge"), "payment_intent": Equals("payment_intent")},
        expandable=frozenset({"charge", "payment_intent"} | {f"evidence.{name}" for name in (
            "cancellation_policy", "customer_communication", "customer_signature", "duplicate_charge_documentation",
            "receipt", "refund_policy", "service_documentation", "shipping_documentation", "uncategorized_file")}),
        generator="dispute", share=0.003,
    ),
    EmulatedObject(
        "payouts", "payout", "/v1/payouts", "/v1/payouts/{id}", "rak_payout_read", "payout",
        filters={"arrival_date": Range("arrival_date"), "destination": Equals("destination"),
                 "status": Equals("status")},
        expandable=frozenset({"application_fee", "balance_transaction", "destination", "failure_balance_transaction",
                              "original_payout", "reversed_by"}),
        generator="payout", share=0.006,
    ),
    EmulatedObject(
        "transfers", "transfer", "/v1/transfers", "/v1/transfers/{id}", "rak_transfer_read", "transfer",
        filters={"destination": Equals("destination"), "transfer_group": Equals("transfer_group")},
        expandable=frozenset({"balance_transaction", "destination", "destination_payment", "source_transaction"}),
        sub_lists=(SubList("reversals", "transfer_reversals", "/v1/transfers/{id}/reversals"),),
        generator="transfer", share=0.006,
    ),
    EmulatedObject(
        "transfer_reversals", "transfer_reversal", retrieve="/v1/transfers/{parent}/reversals/{id}",
        permission="rak_transfer_read", created_filter=False,
        expandable=frozenset({"balance_transaction", "destination_payment_refund", "source_refund", "transfer"}),
        parent="transfers", livemode=False,
    ),
    EmulatedObject(
        "application_fees", "application_fee", "/v1/application_fees", "/v1/application_fees/{id}",
        "rak_application_fee_read", "application_fee", filters={"charge": Equals("charge")},
        expandable=frozenset({"account", "application", "balance_transaction", "charge", "originating_transaction"}),
        sub_lists=(SubList("refunds", "application_fee_refunds", "/v1/application_fees/{id}/refunds"),),
        generator="application_fee", share=0.005,
    ),
    EmulatedObject(
        "application_fee_refunds", "fee_refund", retrieve="/v1/application_fees/{parent}/refunds/{id}",
        permission="rak_application_fee_read", events="application_fee.refund", created_filter=False,
        expandable=frozenset({"balance_transaction", "fee"}), parent="application_fees", livemode=False,
    ),
    EmulatedObject(
        "balance_transactions", "balance_transaction", "/v1/balance_transactions", "/v1/balance_transactions/{id}",
        "rak_balance_transaction_source_read",
        filters={"currency": Equals("currency"),
                 "payout": Where(_payout_settled, index=lambda store, payout: store.settled.get(payout, ())),
                 "source": Equals("source"),
                 "type": Equals("type")},
        rules=ListRules(checks=(_automatic_payout,)),
        expandable=frozenset({"source"}), livemode=False,
    ),
    # --- checkout (after the customers, prices, payment intents and subscriptions they make or name)
    EmulatedObject(
        "payment_links", "payment_link", "/v1/payment_links", "/v1/payment_links/{id}", "rak_payment_link_read",
        "payment_link", created_filter=False,  # no `created` on the object nor on its list
        filters={"active": Flag("active")},
        expandable=frozenset({"application", "automatic_tax.liability.account",
                              "invoice_creation.invoice_data.account_tax_ids",
                              "invoice_creation.invoice_data.issuer.account", "on_behalf_of",
                              "shipping_options.shipping_rate", "subscription_data.invoice_settings.account_tax_ids",
                              "subscription_data.invoice_settings.issuer.account", "transfer_data.destination"}),
        includable={"line_items": _related("payment_link_line_items")},
        generator="payment_link", share=0.002,
    ),
    EmulatedObject(
        "checkout_sessions", "checkout.session", "/v1/checkout/sessions", "/v1/checkout/sessions/{id}",
        "rak_checkout_session_read", "checkout.session",
        filters={"customer": Equals("customer"), "customer_account": Equals("customer_account"),
                 "customer_details": Where(lambda s, o, v: (o["customer_details"] or {}).get("email") == v.get("email"),
                                           kind="hash:email"),
                 "payment_intent": Equals("payment_intent"), "payment_link": Equals("payment_link"),
                 "status": Choice("status", ("complete", "expired", "open")), "subscription": Equals("subscription")},
        expandable=frozenset({"automatic_tax.liability.account", "customer", "discounts.coupon",
                              "discounts.promotion_code", "invoice", "invoice_creation.invoice_data.account_tax_ids",
                              "invoice_creation.invoice_data.issuer.account", "payment_intent", "payment_link",
                              "setup_intent", "shipping_cost.shipping_rate", "shipping_options.shipping_rate",
                              "subscription"}),
        includable={"line_items": _related("checkout_session_line_items")},
        generator="checkout_session", share=0.006,
    ),
    EmulatedObject(
        "setup_intents", "setup_intent", "/v1/setup_intents", "/v1/setup_intents/{id}", "rak_setup_intent_read",
        "setup_intent",
        filters={"attach_to_self": Where(lambda s, o, v: bool(o.get("attach_to_self")) is v, kind="boolean"),
                 "customer": Equals("customer"),
                 "customer_account": Equals("customer_account"), "payment_method": Equals("payment_method")},
        expandable=frozenset({"application", "customer", "latest_attempt", "mandate", "on_behalf_of", "payment_method",
                              "single_use_mandate"}),
        generator="setup_intent", share=0.004,
    ),
    EmulatedObject(
        "setup_attempts", "setup_attempt", "/v1/setup_attempts", "/v1/setup_attempts/{id}", "rak_setup_intent_read",
        filters={"setup_intent": Equals("setup_intent")}, rules=ListRules(required=("setup_intent",)),
        expandable=frozenset({"application", "customer", "on_behalf_of", "payment_method",
                              "payment_method_details.bancontact.generated_sepa_debit",
                              "payment_method_details.bancontact.generated_sepa_debit_mandate",
                              "payment_method_details.card_present.generated_card",
                              "payment_method_details.ideal.generated_sepa_debit",
                              "payment_method_details.ideal.generated_sepa_debit_mandate",
                              "payment_method_details.sofort.generated_sepa_debit",
                              "payment_method_details.sofort.generated_sepa_debit_mandate", "setup_intent"}),
    ),
    # --- radar and top-ups
    EmulatedObject(
        "reviews", "review", "/v1/reviews", "/v1/reviews/{id}", "rak_review_read", "review",
        expandable=frozenset({"charge", "payment_intent"}),  # opened with the charges a rule flags
    ),
    EmulatedObject(
        "early_fraud_warnings", "radar.early_fraud_warning", "/v1/radar/early_fraud_warnings",
        "/v1/radar/early_fraud_warnings/{id}", "rak_radar_early_fraud_warning_read", "radar.early_fraud_warning",
        filters={"charge": Equals("charge"), "payment_intent": Equals("payment_intent")},
        expandable=frozenset({"charge", "payment_intent"}), generator="early_fraud_warning", share=0.002,
    ),
    EmulatedObject(
        "topups", "topup", "/v1/topups", "/v1/topups/{id}", "rak_topup_read", "topup",
        filters={"amount": Range("amount"),
                 "status": Choice("status", ("canceled", "failed", "pending", "succeeded"))},
        expandable=frozenset({"balance_transaction", "payment_method"}), generator="topup", share=0.002,
    ),
    # --- issuing (cards the account issues, and what they are used for)
    EmulatedObject(
        "issuing_cardholders", "issuing.cardholder", "/v1/issuing/cardholders", "/v1/issuing/cardholders/{id}",
        "rak_issuing_cardholder_read", "issuing_cardholder",
        filters={"email": Equals("email"), "phone_number": Equals("phone_number"),
                 "status": Choice("status", ("active", "blocked", "inactive")),
                 "type": Choice("type", ("company", "individual"))},
        expandable=frozenset({"individual.verification.document.back", "individual.verification.document.front"}),
        generator="issuing_cardholder", share=0.003,
    ),
    EmulatedObject(
        "issuing_cards", "issuing.card", "/v1/issuing/cards", "/v1/issuing/cards/{id}", "rak_issuing_card_read",
        "issuing_card",
        filters={"cardholder": Equals("cardholder"), "exp_month": Where(lambda s, o, v: str(o["exp_month"]) == v),
                 "exp_year": Where(lambda s, o, v: str(o["exp_year"]) == v), "last4": Equals("last4"),
                 "personalization_design": Equals("personalization_design"),
                 "status": Choice("status", ("active", "canceled", "inactive")),
                 "type": Choice("type", ("physical", "virtual"))},
        expandable=frozenset({"personalization_design", "replaced_by", "replacement_for"}),
        generator="issuing_card", share=0.004,
    ),
    EmulatedObject(
        "issuing_authorizations", "issuing.authorization", "/v1/issuing/authorizations",
        "/v1/issuing/authorizations/{id}", "rak_issuing_authorization_read", "issuing_authorization",
        filters={"card": Equals("card"), "cardholder": Equals("cardholder"),
                 "status": Choice("status", ("closed", "expired", "pending", "reversed"))},
        expandable=frozenset({"cardholder", "token"}), generator="issuing_authorization", share=0.008,
    ),
    EmulatedObject(
        "issuing_transactions", "issuing.transaction", "/v1/issuing/transactions", "/v1/issuing/transactions/{id}",
        "rak_issuing_transaction_read", "issuing_transaction",
        filters={"card": Equals("card"), "cardholder": Equals("cardholder"),
                 "type": Choice("type", ("capture", "refund"))},
        expandable=frozenset({"authorization", "balance_transaction", "card", "cardholder", "dispute", "token"}),
    ),
    EmulatedObject(
        "issuing_disputes", "issuing.dispute", "/v1/issuing/disputes", "/v1/issuing/disputes/{id}",
        "rak_issuing_dispute_read", "issuing_dispute",
        filters={"status": Choice("status", ("expired", "lost", "submitted", "unsubmitted", "won")),
                 "transaction": Equals("transaction")},
        expandable=frozenset({"transaction"} | {f"evidence.{kind}.additional_documentation" for kind in (
            "canceled", "duplicate", "fraudulent", "merchandise_not_as_described", "no_valid_authorization",
            "not_received", "other", "service_not_as_described")} | {f"evidence.duplicate.{name}" for name in (
                "card_statement", "cash_receipt", "check_image")}),
        generator="issuing_dispute", share=0.002,
    ),
    # --- files (uploads: dispute evidence, logos) and the links that share them
    EmulatedObject(
        "files", "file", "/v1/files", "/v1/files/{id}", "rak_file_read", "file",
        filters={"purpose": Equals("purpose")}, generator="file", share=0.003, livemode=False,
    ),
    EmulatedObject(
        "file_links", "file_link", "/v1/file_links", "/v1/file_links/{id}", "rak_file_link_read",
        filters={"expired": Flag("expired"), "file": Equals("file")},
        expandable=frozenset({"file"}), generator="file_link", share=0.002,
    ),
    # --- the change log
    EmulatedObject(
        "events", "event", "/v1/events", "/v1/events/{id}", "rak_event_read",
        filters={"delivery_success": Where(lambda s, o, v: (o["id"] not in s.undelivered) is v, kind="boolean"),
                 "type": Where(_event_types, kind="event_type"), "types": Where(_event_types, kind="event_types")},
        rules=ListRules(exclusive=(("type", "types"),)),
    ),
    # --- reached only through `expand[]` (and the ids other objects hold)
    # a customer's, listed at /v1/customers/{id}/payment_methods (those filters apply there)
    EmulatedObject("payment_methods", "payment_method", retrieve="/v1/payment_methods/{id}",
                   permission="rak_payment_method_read", events="payment_method",
                   filters={"allow_redisplay": Choice("allow_redisplay", ("always", "limited", "unspecified")),
                            "type": Equals("type")},
                   expandable=frozenset({"card.generated_from.setup_attempt", "customer",
                                         "sepa_debit.generated_from.charge",
                                         "sepa_debit.generated_from.setup_attempt"}), generator="payment_method"),
    # what a checkout session, payment link or quote sells
    EmulatedObject("items", "item", includable={"discounts": _extra("discounts", []), "taxes": _extra("taxes", [])},
                   livemode=False),
    EmulatedObject("discounts", "discount", expandable=frozenset({"customer", "promotion_code", "source.coupon"}),
                   livemode=False),
    # an invoice's payments (made as it is paid): listed, and included in the invoice when expanded
    EmulatedObject("invoice_payments", "invoice_payment", "/v1/invoice_payments", "/v1/invoice_payments/{id}",
                   "rak_invoice_read", "invoice_payment",
                   filters={"invoice": Equals("invoice"),
                            "payment": Where(lambda s, o, v: all(o["payment"].get(k) == x for k, x in v.items()),
                                             kind="hash:payment_intent,payment_record,type"),
                            "status": Choice("status", ("canceled", "open", "paid"))},
                   expandable=frozenset({"invoice", "payment.charge", "payment.payment_intent",
                                         "payment.payment_record"})),
    # a customer's, listed at /v1/customers/{id}/tax_ids (and included in it when expanded)
    EmulatedObject("tax_ids", "tax_id", retrieve="/v1/tax_ids/{id}", permission="rak_customer_read",
                   events="customer.tax_id", deletable=True, generator="tax_id",
                   expandable=frozenset({"customer", "owner.account", "owner.application", "owner.customer"})),
    # a customer's credit balance changes, listed at /v1/customers/{id}/balance_transactions
    EmulatedObject("customer_balance_transactions", "customer_balance_transaction", permission="rak_customer_read",
                   filters={"created": Range("created"), "invoice": Equals("invoice")},
                   expandable=frozenset({"checkout_session", "credit_note", "customer", "invoice"})),
    # the entitlement features a product grants, listed at /v1/products/{id}/features
    EmulatedObject("product_features", "product_feature", permission="rak_product_read"),
    # an account's external accounts, bank accounts and debit cards its payouts go to, listed by its platform at
    # /v1/accounts/{id}/external_accounts (see connect.py); Stripe records their changes on the account
    EmulatedObject("bank_accounts", "bank_account", permission=CONNECTED_ACCOUNTS,
                   events="account.external_account", deletable=True,
                   filters={"object": Choice("object", ("bank_account", "card"))},
                   expandable=frozenset({"account", "customer"}), generator="external_account", livemode=False),
    EmulatedObject("external_cards", "card", permission=CONNECTED_ACCOUNTS,
                   events="account.external_account", deletable=True, expandable=frozenset({"account", "customer"}),
                   generator="external_card", livemode=False),
    EmulatedObject("cards", "card", expandable=frozenset({"account", "customer"}), livemode=False),  # customers'
    # the people of a connected account's business, listed by its platform at /v1/accounts/{id}/persons
    EmulatedObject("persons", "person", permission=CONNECTED_ACCOUNTS, events="person", deletable=True,
                   filters={"relationship": Where(_relationship, kind="hash:" + ",".join(PERSON_ROLES))},
                   expandable=frozenset({f"verification.{document}.{side}" for side in ("back", "front")
                                         for document in ("document", "additional_document")}),
                   generator="person", livemode=False),
    EmulatedObject("tax_codes", "tax_code", retrieve="/v1/tax_codes/{id}", livemode=False),
)

BY_NAME: Mapping[str, EmulatedObject] = MappingProxyType({entry.name: entry for entry in OBJECTS})
BY_OBJECT: Mapping[str, EmulatedObject] = MappingProxyType({entry.object: entry for entry in OBJECTS})
LISTED = tuple(entry for entry in OBJECTS if entry.path)  # top-level lists, in build order
SUB_LIST_OF: Mapping[str, tuple[EmulatedObject, SubList]] = MappingProxyType(
    {sub.item: (entry, sub) for entry in OBJECTS for sub in entry.sub_lists})
# The two singletons: not lists, one object per account (rendered by the Emulator).
SINGLETONS = {"account": "rak_account_read", "balance": "rak_balance_read"}
