"""The two singletons: the account (`/v1/account`, `/v1/accounts/{id}`) and its balance (`/v1/balance`)."""

from __future__ import annotations

from collections import defaultdict

from .objects import EMBED_LIMIT
from .store import Store


def account_object(store: Store, created: int, platform: bool, controlled: bool = True) -> dict:
    """The account as Stripe returns it: a standard account, verified and enabled. A connected one was
    created by its platform, which controls it (`controller.is_controller`): Stripe shows such a platform
    the account's external accounts (the first 10 embedded) and its persons. One connected through
    Connect OAuth (`controlled=False`) is its own: no external accounts in it, none for the platform."""
    name = "Emulated Inc." if platform else "Connected Shop"
    external = external_accounts(store)
    no_requirements = {"alternatives": [], "current_deadline": None, "currently_due": [], "disabled_reason": None,
                       "errors": [], "eventually_due": [], "past_due": [], "pending_verification": []}
    return {
        "id": store.account_id, "object": "account",
        "business_profile": {"annual_revenue": None, "estimated_worker_count": None, "mcc": "5734",
                             "minority_owned_business_designation": None, "monthly_estimated_revenue": None,
                             "name": name, "product_description": "Software subscriptions",
                             "support_address": None, "support_email": "support@example.com",
                             "support_phone": "+15555550100", "support_url": None, "url": "https://example.com"},
        "business_type": "company", "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "controller": {"type": "account"} if platform else PLATFORM_CONTROLLED if controlled else OWN_CONTROLLER,
        "country": "US", "created": created,
        "default_currency": "usd", "details_submitted": True, "email": "owner@example.com",
        **({"external_accounts": {"object": "list", "data": external[:EMBED_LIMIT],
                                  "has_more": len(external) > EMBED_LIMIT,
                                  "url": f"/v1/accounts/{store.account_id}/external_accounts"}}
           if controlled or platform else {}),
        "future_requirements": no_requirements, "metadata": {}, "payouts_enabled": True,
        "requirements": no_requirements,
        "settings": {
            "bacs_debit_payments": {"display_name": None, "service_user_number": None},
            "branding": {"icon": None, "logo": None, "primary_color": "#635bff", "secondary_color": None},
            "card_issuing": {"tos_acceptance": {"date": None, "ip": None}},
            "card_payments": {"decline_on": {"avs_failure": False, "cvc_failure": True},
                              "statement_descriptor_prefix": "EMULATED", "statement_descriptor_prefix_kana": None,
                              "statement_descriptor_prefix_kanji": None},
            "dashboard": {"display_name": name.split()[0], "timezone": "Etc/UTC"},
            "invoices": {"default_account_tax_ids": None, "hosted_payment_method_save": "offer"},
            "payments": {"statement_descriptor": "EMULATED* SHOP", "statement_descriptor_kana": None,
                         "statement_descriptor_kanji": None, "statement_descriptor_prefix_kana": None,
                         "statement_descriptor_prefix_kanji": None},
            "payouts": {"debit_negative_balances": True, "schedule": {"delay_days": 2, "interval": "daily"},
                        "statement_descriptor": None},
            "sepa_debit_payments": {},
        },
        "tos_acceptance": {"date": created, "ip": "203.0.113.7", "user_agent": None}, "type": "standard",
        **store.extra(store.account_id, "account_changes", {}),  # what `account.updated` events changed
    }


# A Standard account its platform created (Stripe's `controller` for `type=standard` made through the API)
PLATFORM_CONTROLLED = {"fees": {"payer": "account"}, "is_controller": True, "losses": {"payments": "stripe"},
                       "requirement_collection": "stripe", "stripe_dashboard": {"type": "full"},
                       "type": "application"}


# A Standard account connected through Connect OAuth, as its platform sees it: the account controls itself
OWN_CONTROLLER = {"is_controller": False, "type": "account"}


def external_accounts(store: Store) -> list[dict]:
    """The account's bank accounts and debit cards, in the order of its external accounts list."""
    return [obj for _, obj in store.found_related("account_external_accounts", store.account_id)]


def balance_object(store: Store) -> dict:
    """Funds not yet paid out, from the balance transactions: available, or pending until `available_on`."""
    now = store.clock()
    available: dict[str, int] = defaultdict(int)
    pending: dict[str, int] = defaultdict(int)
    with store.lock:
        for txn in store.collections["balance_transactions"].objects.values():
            if txn["id"] in store.settled_by:
                continue
            (available if txn["available_on"] <= now else pending)[txn["currency"]] += txn["net"]
    currencies = sorted(set(available) | set(pending)) or ["usd"]
    return {
        "object": "balance", "livemode": store.livemode,
        "available": [{"amount": available[c], "currency": c, "source_types": {"card": available[c]}}
                      for c in currencies],
        "connect_reserved": [{"amount": 0, "currency": c} for c in currencies],
        "pending": [{"amount": pending[c], "currency": c, "source_types": {"card": pending[c]}} for c in currencies],
    }
