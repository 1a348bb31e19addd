"""The catalog of Stripe objects we load: the one place to add an object.

Each entry is data, read by one engine (`sync.py`): where the object lists, which table it lands
in, whether it changes after creation (and which events say so), which sub-lists Stripe truncates
and where to page them, and the restricted-key permission needed to read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

# Unix-second fields Stripe uses across objects. dlt types them as UTC timestamps by name;
# nested ones are flattened by dlt with "__" (period.start -> period__start).
COMMON_TIMESTAMPS = ("created",)


@dataclass(frozen=True)
class SubList:
    """A list Stripe embeds truncated (first 10 items + `has_more`) in its parent object.

    The embedded items are kept; the rest are paged from `path` after the last embedded id.
    The sub-list's rows land in their own table, never as a dlt child table of the parent.
    """

    field: str  # the parent's field holding {"object": "list", "data": [...], "has_more": ...}
    table: str  # the catalog table the items belong to
    path: str  # page endpoint; "{id}" is the parent's id
    # extra params as (name, value) pairs; "{id}" is the parent's id. A tuple, not a mapping: a
    # SubList travels to the worker processes, and a mappingproxy cannot be pickled.
    params: tuple[tuple[str, str], ...] = ()
    parent_column: str = ""  # column naming the parent on each item (added when Stripe omits it)
    # Objects of other tables each item carries whole, as (column holding their id, their table).
    # Stripe renders them when the parent is read and announces their changes, not the parent's:
    # a parent whose items embed a changed object is read again.
    embeds: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Recheck:
    """A list read again on every incremental run, for changes Stripe announces in no event.

    `params` pick the objects that can still change. With `per`, the list is read once for each
    object of that table this run's events show in one of `states` (`{id}` in a param is its id).
    """

    params: tuple[tuple[str, str], ...]
    per: str | None = None
    states: tuple[str, ...] = ()


@dataclass(frozen=True)
class StripeObject:
    table: str  # table name, Stripe's words, plural snake case
    object: str  # Stripe's `object` value
    path: str | None  # list endpoint; None for objects only reached through a parent
    permission: str  # restricted-key permission needed to read it
    mutable: bool = True  # changes after creation (then `events` keep it current)
    events: tuple[str, ...] = ()  # event types (prefixes) that announce changes to this object
    created_filter: bool = True  # the list endpoint accepts `created[gte|lt]`
    created_field: str = "created"  # the field that filter (and the list order) is about
    list_params: tuple[tuple[str, str], ...] = ()  # extra list params, as (name, value) pairs
    sub_lists: tuple[SubList, ...] = ()
    # False: Stripe announces its creation and deletion but not its updates, so an event's snapshot may
    # be stale; `rechecks` read what can still change, and the list reads what is new.
    updates_announced: bool = True
    rechecks: tuple[Recheck, ...] = ()  # lists read again each incremental run (unannounced changes)
    # Stripe sends an event when one is created (`customer.created`; a charge's `charge.succeeded`,
    # `.failed` or `.pending`): after the first load, new ones arrive with the events feed and the
    # list is not read again (see plan.py).
    creations_announced: bool = False
    parent: str | None = None  # table of the object embedding this one (sub-list items)
    timestamps: tuple[str, ...] = COMMON_TIMESTAMPS
    deletable: bool = False  # Stripe emits `<object>.deleted` for it
    singleton: bool = False  # one object, not a list (the account)

    @property
    def tables(self) -> tuple[str, ...]:
        """Its own table, then its sub-lists' tables: every table one read of it fills."""
        return (self.table, *(sub.table for sub in self.sub_lists))


def _entry(table: str, object: str, path: str | None, permission: str, **kw) -> StripeObject:
    timestamps = kw.pop("timestamps", ())
    return StripeObject(
        table, object, path, permission, timestamps=COMMON_TIMESTAMPS + tuple(timestamps), **kw
    )


CATALOG: tuple[StripeObject, ...] = (
    # --- payments
    _entry("charges", "charge", "/v1/charges", "rak_charge_read", events=("charge.",), creations_announced=True),
    _entry(
        "payment_intents",
        "payment_intent",
        "/v1/payment_intents",
        "rak_payment_intent_read",
        events=("payment_intent.",),
        creations_announced=True,
        timestamps=("canceled_at",),
    ),
    _entry("refunds", "refund", "/v1/refunds", "rak_refund_read", events=("refund.", "charge.refund."),
           creations_announced=True),
    _entry(
        "disputes",
        "dispute",
        "/v1/disputes",
        "rak_dispute_read",
        events=("charge.dispute.",),
        creations_announced=True,
        timestamps=("evidence_details__due_by",),
    ),
    _entry(
        "balance_transactions",
        "balance_transaction",
        "/v1/balance_transactions",
        "rak_balance_transaction_source_read",
        # Immutable except `status` (pending -> available), which Stripe announces in no event;
        # the lookback window re-reads recent ones.
        mutable=False,
        timestamps=("available_on",),
    ),
    _entry(
        "payouts", "payout", "/v1/payouts", "rak_payout_read", events=("payout.",), creations_announced=True,
        timestamps=("arrival_date",)
    ),
    _entry("transfers", "transfer", "/v1/transfers", "rak_transfer_read", events=("transfer.",),
           creations_announced=True),
    # --- invoices
    _entry(
        "invoices",
        "invoice",
        "/v1/invoices",
        "rak_invoice_read",
        events=("invoice.",),
        creations_announced=True,
        deletable=True,
        sub_lists=(SubList("lines", "invoice_line_items", "/v1/invoices/{id}/lines", parent_column="invoice"),),
        timestamps=(
            "due_date",
            "effective_at",
            "period_start",
            "period_end",
            "next_payment_attempt",
            "webhooks_delivered_at",
            "status_transitions__finalized_at",
            "status_transitions__paid_at",
            "status_transitions__voided_at",
            "status_transitions__marked_uncollectible_at",
        ),
    ),
    _entry(
        "invoice_line_items",
        "line_item",
        None,
        "rak_invoice_read",
        parent="invoices",
        timestamps=("period__start", "period__end"),
    ),
    _entry(
        "invoice_items",
        "invoiceitem",
        "/v1/invoiceitems",
        "rak_invoice_read",
        events=("invoiceitem.",),
        creations_announced=True,
        deletable=True,
        created_field="date",  # invoice items have `date` where other objects have `created`
        # Since 2024 Stripe sends no `invoiceitem.updated`. An item changes only while it is pending
        # or on a draft invoice (whose change Stripe announces as `invoice.updated`): those are read again.
        updates_announced=False,
        rechecks=(
            Recheck((("pending", "true"),)),
            Recheck((("invoice", "{id}"),), per="invoices", states=("draft",)),
        ),
        timestamps=("date", "period__start", "period__end"),
    ),
    _entry(
        "credit_notes",
        "credit_note",
        "/v1/credit_notes",
        "rak_credit_note_read",
        events=("credit_note.",),
        creations_announced=True,
        sub_lists=(
            SubList(
                "lines", "credit_note_line_items", "/v1/credit_notes/{id}/lines", parent_column="credit_note"
            ),
        ),
        timestamps=("effective_at", "voided_at"),
    ),
    _entry("credit_note_line_items", "credit_note_line_item", None, "rak_credit_note_read", parent="credit_notes"),
    # --- billing
    _entry("customers", "customer", "/v1/customers", "rak_customer_read", events=("customer.",), deletable=True,
           creations_announced=True),
    _entry(
        "subscriptions",
        "subscription",
        "/v1/subscriptions",
        "rak_subscription_read",
        events=("customer.subscription.",),
        creations_announced=True,
        list_params=(("status", "all"),),  # without it Stripe hides canceled ones
        sub_lists=(
            SubList(
                "items",
                "subscription_items",
                "/v1/subscription_items",
                params=(("subscription", "{id}"),),
                parent_column="subscription",
                embeds=(("price__id", "prices"), ("plan__id", "plans")),
            ),
        ),
        timestamps=(
            "billing_cycle_anchor",
            "cancel_at",
            "canceled_at",
            "ended_at",
            "start_date",
            "trial_start",
            "trial_end",
        ),
    ),
    _entry(
        "subscription_items",
        "subscription_item",
        None,
        "rak_subscription_read",
        parent="subscriptions",
        timestamps=("current_period_start", "current_period_end"),
    ),
    _entry("products", "product", "/v1/products", "rak_product_read", events=("product.",), deletable=True,
           creations_announced=True, timestamps=("updated",)),
    _entry("prices", "price", "/v1/prices", "rak_price_read", events=("price.",), deletable=True,
           creations_announced=True),
    _entry("plans", "plan", "/v1/plans", "rak_plan_read", events=("plan.",), deletable=True, creations_announced=True),
    _entry("coupons", "coupon", "/v1/coupons", "rak_coupon_read", events=("coupon.",), deletable=True,
           creations_announced=True, timestamps=("redeem_by",)),
    _entry(
        "promotion_codes",
        "promotion_code",
        "/v1/promotion_codes",
        "rak_promotion_code_read",
        events=("promotion_code.",),
        creations_announced=True,
        timestamps=("expires_at",),
    ),
    _entry("tax_rates", "tax_rate", "/v1/tax_rates", "rak_tax_rate_read", events=("tax_rate.",),
           creations_announced=True),
    # --- the change log itself, and who the data belongs to
    _entry("events", "event", "/v1/events", "rak_event_read", mutable=False),
    _entry("account", "account", "/v1/account", "rak_account_read", created_filter=False, singleton=True),
)

BY_TABLE: Mapping[str, StripeObject] = MappingProxyType({entry.table: entry for entry in CATALOG})


BY_OBJECT: Mapping[str, StripeObject] = MappingProxyType(
    {entry.object: entry for entry in CATALOG if entry.events}
)


def object_for_event(event: Mapping) -> StripeObject | None:
    """The catalog object an event carries, or None when we do not load that kind of object.

    Decided by `data.object.object`, not by the type prefix: `customer.discount.created` and
    `customer.tax_id.updated` start like customer events but carry other objects.
    """
    return BY_OBJECT.get(event["data"]["object"].get("object"))
