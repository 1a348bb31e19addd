"""The catalog of Stripe objects we load: the one place to add an object.

Each entry is data, read by one engine (`engine.py`): where the object lists, which table it lands
in, whether it changes after creation (and which events say so), which sub-lists Stripe truncates
and where to page them, which lists are only reachable one parent at a time (a fan-out), its
group, whether a run loads it by default, and the restricted-key permission needed to read it.
How each entry syncs and what it costs is derived from this data (`listing.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

# Unix-second fields Stripe uses across objects. dlt types them as UTC timestamps by name;
# nested ones are flattened by dlt with "__" (period.start -> period__start).
COMMON_TIMESTAMPS = ("created",)


@dataclass(frozen=True)
class SubList:
    """A list Stripe embeds truncated (first 10 items + `has_more`) in its parent object.

    The embedded items are kept; the rest are paged from `path` after the last embedded id.
    The sub-list's rows land in their own table, never as a dlt child table of the parent.
    """

    field: str  # the parent's field holding {"object": "list", "data": [...], "has_more": ...}; "": never
    table: str  # the catalog table the items belong to
    path: str  # page endpoint; "{id}" is the parent's id
    # extra params as (name, value) pairs; "{id}" is the parent's id. A tuple, not a mapping: a
    # SubList travels to the worker processes, and a mappingproxy cannot be pickled.
    params: tuple[tuple[str, str], ...] = ()
    parent_column: str = ""  # column naming the parent on each item (added when Stripe omits it)
    # Stripe embeds it only when the parent's list asks (`expand[]=data.<field>`): asked when wanted.
    expand: bool = False
    # parent fields (a dotted path into nested ones) that must hold these values: Stripe keeps the
    # sub-list only for those parents; `only_for` says which in words (automatic payouts)
    only_if: tuple[tuple[str, Any], ...] = ()
    only_for: str = ""
    # Changes no event announces (a feature attached to a product): every run reads it again for every parent.
    every_run: bool = False
    # Objects of other tables each item carries whole, as (column holding their id, their table).
    # Stripe renders them when the parent is read and announces their changes, not the parent's:
    # a parent whose items embed a changed object is read again.
    embeds: tuple[tuple[str, str], ...] = ()

    @property
    def fan_out(self) -> bool:
        """Never embedded: read whole from `path` for every parent, one request (or more) each."""
        return not self.field


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
    # A row whose `status` is pending changes, unannounced, once this timestamp has passed (a balance
    # transaction turns available on `available_on`): a run reads the list again from the oldest such row.
    settles_at: str = ""
    # Stripe sends an event when one is created (`customer.created`; a charge's `charge.succeeded`,
    # `.failed` or `.pending`): after the first load, new ones arrive with the events feed and the
    # list is not read again (see plan.py).
    creations_announced: bool = False
    parent: str | None = None  # table of the object embedding this one (sub-list items)
    timestamps: tuple[str, ...] = COMMON_TIMESTAMPS
    deletable: bool = False  # Stripe emits `<object>.deleted` for it
    singleton: bool = False  # one object, not a list (the account)
    history: bool = False  # a singleton appended each run with the time it was read (the balance)
    group: str = ""  # `--resources` takes groups: payments, billing, connect, issuing, documents, core
    default: bool = True  # loaded without `--resources`; off: it would dominate a backfill (fan-outs)
    expand: tuple[str, ...] = ()  # fields Stripe returns only when expanded, always asked for (`tiers`)
    drop: tuple[str, ...] = ()  # fields left out of its rows: another table holds them (a file's links)
    # Fields kept as one JSON column instead of dlt's flattened columns and nested tables: objects of
    # other tables embedded whole (an authorization's card), deep structures read as a whole (phases).
    json: tuple[str, ...] = ()
    # The platform's list of its connected accounts (`/v1/accounts`): read by the platform's own key, once
    # a run, never as a connected account (see connect.py). Stripe records the changes of those accounts,
    # of their persons and of their external accounts in each connected account's own events, not the
    # platform's: (event type prefix, table it changes).
    connected_events: tuple[tuple[str, str], ...] = ()

    @property
    def follows_events(self) -> bool:
        """Kept current from `/v1/events` after its first load: its changes, or its creations (a file)."""
        return bool(self.events) and (self.mutable or self.creations_announced)

    @property
    def tables(self) -> tuple[str, ...]:
        """Its own table, then its sub-lists' tables: every table one read of it fills."""
        return (self.table, *(sub.table for sub in self.sub_lists))


def _entry(table: str, object: str, path: str | None, permission: str, **kw) -> StripeObject:
    timestamps = kw.pop("timestamps", ())
    return StripeObject(
        table, object, path, permission, timestamps=COMMON_TIMESTAMPS + tuple(timestamps), **kw
    )


def _group(group: str, *entries: StripeObject) -> tuple[StripeObject, ...]:
    return tuple(replace(entry, group=group) for entry in entries)


CONTROLLED = (("controller.is_controller", True),)  # a connected account its platform controls

CATALOG: tuple[StripeObject, ...] = (
    *_group(
        "payments",
        _entry("charges", "charge", "/v1/charges", "rak_charge_read", events=("charge.",), creations_announced=True),
        _entry("payment_intents", "payment_intent", "/v1/payment_intents", "rak_payment_intent_read",
               events=("payment_intent.",), creations_announced=True, timestamps=("canceled_at",)),
        _entry("refunds", "refund", "/v1/refunds", "rak_refund_read", events=("refund.", "charge.refund."),
               creations_announced=True),
        _entry("disputes", "dispute", "/v1/disputes", "rak_dispute_read", events=("charge.dispute.",),
               creations_announced=True, timestamps=("evidence_details__due_by",)),
        # Immutable except `status` (pending -> available on `available_on`), which Stripe announces in no event.
        _entry("balance_transactions", "balance_transaction", "/v1/balance_transactions",
               "rak_balance_transaction_source_read", mutable=False, settles_at="available_on",
               timestamps=("available_on",)),
        _entry("payouts", "payout", "/v1/payouts", "rak_payout_read", events=("payout.",), creations_announced=True,
               timestamps=("arrival_date",),
               # Reconciliation: which balance transactions each automatic payout settled. Stripe answers
               # `?payout=` only for automatic payouts (a manual one is refused).
               sub_lists=(SubList("", "payout_balance_transactions", "/v1/balance_transactions",
                                  params=(("payout", "{id}"),), parent_column="payout",
                                  only_if=(("automatic", True),), only_for="automatic"),)),
        _entry("payout_balance_transactions", "balance_transaction", None, "rak_balance_transaction_source_read",
               parent="payouts", timestamps=("available_on",)),
        # its events: completed, expired, async payments (no event when one is made)
        _entry("checkout_sessions", "checkout.session", "/v1/checkout/sessions", "rak_checkout_session_read",
               events=("checkout.session.",), timestamps=("expires_at",),
               sub_lists=(SubList("line_items", "checkout_session_line_items", "/v1/checkout/sessions/{id}/line_items",
                                  parent_column="checkout_session", expand=True),)),
        _entry("checkout_session_line_items", "item", None, "rak_checkout_session_read", parent="checkout_sessions"),
        # A payment link has no `created`, and its list no `created` filter: the list is read whole each run.
        StripeObject("payment_links", "payment_link", "/v1/payment_links", "rak_payment_link_read",
                     events=("payment_link.",), created_filter=False, timestamps=(),
                     sub_lists=(SubList("line_items", "payment_link_line_items", "/v1/payment_links/{id}/line_items",
                                        parent_column="payment_link", expand=True),)),
        _entry("payment_link_line_items", "item", None, "rak_payment_link_read", parent="payment_links"),
        _entry("setup_intents", "setup_intent", "/v1/setup_intents", "rak_setup_intent_read",
               events=("setup_intent.",), creations_announced=True,
               # each confirmation's attempt: listed per setup intent only
               sub_lists=(SubList("", "setup_attempts", "/v1/setup_attempts", params=(("setup_intent", "{id}"),),
                                  parent_column="setup_intent"),)),
        _entry("setup_attempts", "setup_attempt", None, "rak_setup_intent_read", parent="setup_intents",
               default=False),
        # A customer's payment methods: attached, updated and detached (then naming no customer) each say
        # so in an event of their own.
        _entry("payment_methods", "payment_method", None, "rak_payment_method_read", parent="customers",
               events=("payment_method.",), default=False),
        _entry("reviews", "review", "/v1/reviews", "rak_review_read", events=("review.",), creations_announced=True),
        _entry("early_fraud_warnings", "radar.early_fraud_warning", "/v1/radar/early_fraud_warnings",
               "rak_radar_early_fraud_warning_read", events=("radar.early_fraud_warning.",),
               creations_announced=True),
        _entry("topups", "topup", "/v1/topups", "rak_topup_read", events=("topup.",), creations_announced=True,
               timestamps=("expected_availability_date",)),
        # The account's funds as of each run: appended, so the table is a history of the balance.
        StripeObject(
            "balance", "balance", "/v1/balance", "rak_balance_read", created_filter=False, singleton=True, history=True,
            timestamps=("read_at",),  # no `created`: the balance is not an object Stripe made at some time
            # amounts per currency, a handful: one row per run reads them whole
            json=("available", "pending", "connect_reserved", "instant_available", "issuing",
                  "refund_and_dispute_prefunding"),
        ),
    ),
    *_group(
        "billing",
        _entry("invoices", "invoice", "/v1/invoices", "rak_invoice_read", events=("invoice.",),
               creations_announced=True, deletable=True,
               sub_lists=(SubList("lines", "invoice_line_items", "/v1/invoices/{id}/lines", parent_column="invoice"),),
               timestamps=("due_date", "effective_at", "period_start", "period_end", "next_payment_attempt",
                           "webhooks_delivered_at", "status_transitions__finalized_at", "status_transitions__paid_at",
                           "status_transitions__voided_at", "status_transitions__marked_uncollectible_at")),
        _entry("invoice_line_items", "line_item", None, "rak_invoice_read", parent="invoices",
               timestamps=("period__start", "period__end")),
        _entry("invoice_items", "invoiceitem", "/v1/invoiceitems", "rak_invoice_read", events=("invoiceitem.",),
               creations_announced=True, deletable=True,
               created_field="date",  # invoice items have `date` where other objects have `created`
               # Since 2024 Stripe sends no `invoiceitem.updated`. An item changes only while it is pending
               # or on a draft invoice (whose change Stripe announces as `invoice.updated`): those are read again.
               updates_announced=False,
               rechecks=(Recheck((("pending", "true"),)),
                         Recheck((("invoice", "{id}"),), per="invoices", states=("draft",))),
               timestamps=("date", "period__start", "period__end")),
        _entry("credit_notes", "credit_note", "/v1/credit_notes", "rak_credit_note_read", events=("credit_note.",),
               creations_announced=True, timestamps=("effective_at", "voided_at"),
               sub_lists=(SubList("lines", "credit_note_line_items", "/v1/credit_notes/{id}/lines",
                                  parent_column="credit_note"),)),
        _entry("credit_note_line_items", "credit_note_line_item", None, "rak_credit_note_read", parent="credit_notes"),
        _entry("customers", "customer", "/v1/customers", "rak_customer_read", events=("customer.",),
               creations_announced=True, deletable=True,
               sub_lists=(
                   # tax ids come embedded when the list asks (`expand[]`); their own events say when one changes
                   SubList("tax_ids", "customer_tax_ids", "/v1/customers/{id}/tax_ids", parent_column="customer",
                           expand=True),
                   SubList("", "payment_methods", "/v1/customers/{id}/payment_methods", parent_column="customer"),
                   # no event of its own: a change of the balance is the customer's (`customer.updated`)
                   SubList("", "customer_balance_transactions", "/v1/customers/{id}/balance_transactions",
                           parent_column="customer"),
               )),
        _entry("customer_tax_ids", "tax_id", None, "rak_customer_read", parent="customers",
               events=("customer.tax_id.",)),
        _entry("customer_balance_transactions", "customer_balance_transaction", None, "rak_customer_read",
               parent="customers", default=False),
        _entry("subscriptions", "subscription", "/v1/subscriptions", "rak_subscription_read",
               events=("customer.subscription.",), creations_announced=True,
               list_params=(("status", "all"),),  # without it Stripe hides canceled ones
               sub_lists=(SubList("items", "subscription_items", "/v1/subscription_items",
                                  params=(("subscription", "{id}"),), parent_column="subscription",
                                  embeds=(("price__id", "prices"), ("plan__id", "plans"))),),
               timestamps=("billing_cycle_anchor", "cancel_at", "canceled_at", "ended_at", "start_date", "trial_start",
                           "trial_end")),
        _entry("subscription_items", "subscription_item", None, "rak_subscription_read", parent="subscriptions",
               timestamps=("current_period_start", "current_period_end")),
        _entry("products", "product", "/v1/products", "rak_product_read", events=("product.",), deletable=True,
               creations_announced=True, timestamps=("updated",),
               sub_lists=(SubList("", "product_features", "/v1/products/{id}/features", parent_column="product",
                                  every_run=True),)),
        StripeObject("product_features", "product_feature", None, "rak_product_read", parent="products",
                     default=False, timestamps=()),
        # Tiers and a price's other currencies come only when expanded: asked for, tiers land in
        # prices__tiers / plans__tiers, the amounts per currency (keyed by currency) as one JSON column.
        _entry("prices", "price", "/v1/prices", "rak_price_read", events=("price.",), deletable=True,
               creations_announced=True, expand=("tiers", "currency_options"), json=("currency_options",)),
        _entry("plans", "plan", "/v1/plans", "rak_plan_read", events=("plan.",), deletable=True,
               creations_announced=True, expand=("tiers",)),
        # Which products a coupon applies to, and its amount off in other currencies, come only when expanded.
        _entry("coupons", "coupon", "/v1/coupons", "rak_coupon_read", events=("coupon.",), deletable=True,
               creations_announced=True, timestamps=("redeem_by",), expand=("applies_to", "currency_options"),
               json=("currency_options",)),
        _entry("promotion_codes", "promotion_code", "/v1/promotion_codes", "rak_promotion_code_read",
               events=("promotion_code.",), creations_announced=True, timestamps=("expires_at",)),
        _entry("tax_rates", "tax_rate", "/v1/tax_rates", "rak_tax_rate_read", events=("tax_rate.",),
               creations_announced=True),
        _entry("subscription_schedules", "subscription_schedule", "/v1/subscription_schedules",
               "rak_subscription_schedule_read", events=("subscription_schedule.",), creations_announced=True,
               timestamps=("canceled_at", "completed_at", "released_at", "current_phase__start_date",
                           "current_phase__end_date"),
               json=("phases",)),  # phases of items of prices, three lists deep: read as a whole
        # A quote's list takes no `created`: read whole on a first load, then through events (and drafts).
        _entry("quotes", "quote", "/v1/quotes", "rak_quote_read", events=("quote.",), created_filter=False,
               sub_lists=(SubList("line_items", "quote_line_items", "/v1/quotes/{id}/line_items",
                                  parent_column="quote", expand=True),),
               # Stripe announces no change of a draft (`quote.updated` does not exist): drafts are read again
               rechecks=(Recheck((("status", "draft"),)),),
               timestamps=("expires_at", "status_transitions__accepted_at", "status_transitions__canceled_at",
                           "status_transitions__finalized_at")),
        _entry("quote_line_items", "item", None, "rak_quote_read", parent="quotes"),
        # Stripe makes one when an invoice is finalized (`invoice.finalized`) and cancels an attempt's open
        # one, unannounced, when the invoice is paid, voided or written off: both read per invoice.
        _entry("invoice_payments", "invoice_payment", "/v1/invoice_payments", "rak_invoice_read",
               events=("invoice_payment.",), creations_announced=True,  # its event: paid
               rechecks=(Recheck((("invoice", "{id}"),), per="invoices",
                                 states=("open", "paid", "void", "uncollectible")),),
               timestamps=("status_transitions__paid_at", "status_transitions__canceled_at")),
        # Shipping rates change (archived) without an event: the list, short, is read whole each run.
        _entry("shipping_rates", "shipping_rate", "/v1/shipping_rates", "rak_shipping_rate_read",
               created_filter=False),
        StripeObject("billing_meters", "billing.meter", "/v1/billing/meters", "rak_billing_meter_read",
                     events=("billing.meter.",), created_filter=False,
                     timestamps=("created", "updated", "status_transitions__deactivated_at")),
        StripeObject("billing_credit_grants", "billing.credit_grant", "/v1/billing/credit_grants",
                     "rak_billing_credit_grant_read", events=("billing.credit_grant.",), created_filter=False,
                     timestamps=("created", "updated", "effective_at", "expires_at", "voided_at")),
    ),
    *_group(
        "connect",
        # `transfer.reversed` / `transfer.updated` announce a new reversal: the transfer's list is read again
        _entry("transfers", "transfer", "/v1/transfers", "rak_transfer_read", events=("transfer.",),
               creations_announced=True,
               sub_lists=(SubList("reversals", "transfer_reversals", "/v1/transfers/{id}/reversals",
                                  parent_column="transfer"),)),
        _entry("transfer_reversals", "transfer_reversal", None, "rak_transfer_read", parent="transfers"),
        # what the platform collects on its connected accounts' payments, and the refunds of it
        _entry("application_fees", "application_fee", "/v1/application_fees", "rak_application_fee_read",
               events=("application_fee.",), creations_announced=True,  # its events: created, refunded
               sub_lists=(SubList("refunds", "application_fee_refunds", "/v1/application_fees/{id}/refunds",
                                  parent_column="fee"),)),
        _entry("application_fee_refunds", "fee_refund", None, "rak_application_fee_read", parent="application_fees",
               events=("application_fee.refund.",)),  # a refund changed alone: its fee's refunds read again
        # The platform's connected accounts, read with its key (empty for an account that is not a platform).
        # Their changes are events of each connected account, which the platform reads one account at a
        # time: the list, 100 a page, is read whole each run instead (a run of all accounts reuses the list
        # it reads to find them); persons and external accounts past the 10 embedded are read again for
        # the accounts whose own events announce a change (read in a run of the connected accounts, for
        # their tables), or, in a run of the platform alone, which cannot see those events, every run.
        _entry("accounts", "account", "/v1/accounts", "rak_connected_account_read",
               connected_events=(("account.updated", "accounts"), ("account.external_account.", "external_accounts"),
                                 ("person.", "persons")),
               # Stripe shows both only to a platform that controls the account (one it created): an account
               # connected through Connect OAuth keeps them to itself
               sub_lists=(
                   SubList("external_accounts", "external_accounts", "/v1/accounts/{id}/external_accounts",
                           parent_column="account", only_if=CONTROLLED, only_for="platform-controlled"),
                   SubList("", "persons", "/v1/accounts/{id}/persons", parent_column="account", only_if=CONTROLLED,
                           only_for="platform-controlled"),
               ),
               timestamps=("tos_acceptance__date",)),
        # bank accounts and debit cards (`object` says which) the account's payouts go to; no `created`
        StripeObject("external_accounts", "bank_account", None, "rak_connected_account_read", parent="accounts",
                     timestamps=()),
        # the people of the account's business (owners, directors, its representative)
        _entry("persons", "person", None, "rak_connected_account_read", parent="accounts", default=False),
    ),
    *_group(
        "issuing",
        # Off by default: Stripe refuses these lists to an account that does not use Issuing ("Your account
        # is not set up to use Issuing").
        _entry("issuing_cardholders", "issuing.cardholder", "/v1/issuing/cardholders", "rak_issuing_cardholder_read",
               events=("issuing_cardholder.",), default=False),
        # a card embeds its cardholder whole (the cardholder's own row is in issuing_cardholders)
        _entry("issuing_cards", "issuing.card", "/v1/issuing/cards", "rak_issuing_card_read", events=("issuing_card.",),
               timestamps=("shipping__eta",), json=("cardholder",), default=False),
        _entry("issuing_authorizations", "issuing.authorization", "/v1/issuing/authorizations",
               "rak_issuing_authorization_read", events=("issuing_authorization.",),
               json=("card", "transactions", "request_history", "balance_transactions"), default=False),
        _entry("issuing_transactions", "issuing.transaction", "/v1/issuing/transactions",
               "rak_issuing_transaction_read", events=("issuing_transaction.",), default=False),
        _entry("issuing_disputes", "issuing.dispute", "/v1/issuing/disputes", "rak_issuing_dispute_read",
               events=("issuing_dispute.",), json=("balance_transactions",), default=False),
    ),
    *_group(
        "documents",
        # A file never changes (only `file.created`); its `links` are the file_links table.
        _entry("files", "file", "/v1/files", "rak_file_read", mutable=False, events=("file.",),
               creations_announced=True, drop=("links",),
               timestamps=("expires_at",)),
        # A link expires with time, announced by no event: the list is read whole each run.
        _entry("file_links", "file_link", "/v1/file_links", "rak_file_link_read", created_filter=False,
               timestamps=("expires_at",)),
    ),
    *_group(
        "core",
        # the change log itself, and who the data belongs to
        _entry("events", "event", "/v1/events", "rak_event_read", mutable=False),
        _entry("account", "account", "/v1/account", "rak_account_read", created_filter=False, singleton=True),
    ),
)

BY_TABLE: Mapping[str, StripeObject] = MappingProxyType({entry.table: entry for entry in CATALOG})


BY_OBJECT: Mapping[str, StripeObject] = MappingProxyType(
    {entry.object: entry for entry in CATALOG if entry.events}
)

# Endpoints fan-outs read one parent at a time (a list sharing one competes with them for its limit).
FAN_OUT_PATHS = frozenset(sub.path for entry in CATALOG for sub in entry.sub_lists if sub.fan_out)

GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {group: tuple(e.table for e in CATALOG if e.group == group) for group in dict.fromkeys(e.group for e in CATALOG)}
)


def sub_list_of(entry: StripeObject) -> SubList:
    """The parent's SubList that fills `entry`'s table (`entry` is a sub-list item)."""
    if entry.parent is None:
        raise ValueError(f"{entry.table} is not read through a parent")
    return next(sub for sub in BY_TABLE[entry.parent].sub_lists if sub.table == entry.table)


def list_params(entry: StripeObject, wanted: frozenset[str] | None) -> dict[str, Any]:
    """The params of `entry`'s list: its own, and `expand[]` for includable fields it always asks
    for and for the expandable sub-lists this read fills."""
    params: dict[str, Any] = dict(entry.list_params)
    expand = [f"data.{name}" for name in entry.expand]
    expand += [f"data.{sub.field}" for sub in entry.sub_lists if sub.expand and (wanted is None or sub.table in wanted)]
    if expand:
        params["expand[]"] = expand
    return params


def object_for_event(event: Mapping) -> StripeObject | None:
    """The catalog object an event carries, or None when we do not load that kind of object.

    Decided by `data.object.object`, not by the type prefix: `customer.discount.created` and
    `customer.tax_id.updated` start like customer events but carry other objects.
    """
    return BY_OBJECT.get(event["data"]["object"].get("object"))
