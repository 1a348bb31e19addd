"""Connect application fees: what the platform collects on its connected accounts' charges, and the
refunds of those fees.

A fee names the connected account and its charge (a charge the emulator keeps no copy of: it is
the connected account's), lands on the platform's balance (`application_fee` balance transaction)
and is announced by `application_fee.created`. Each refund (`fee_refund`, a truncating sub-list of
the fee) sends `application_fee.refunded` with the fee's new totals; a refund changed later sends
`application_fee.refund.updated`.
"""

from __future__ import annotations

from typing import Any

from .radar import Radar


class Fees(Radar):
    def application_fee(self, amount: int | None = None, created: int | None = None, refunds: int | None = None,
                        **fields: Any) -> dict | None:
        if not self.destinations and not self.instant:  # a connected account's world collects none
            return None
        r = self.rng
        created = created or self.when()
        amount = amount if amount is not None else r.choice([150, 300, 990, 2500])
        fee_id = self.ids.new("fee")
        charge = self.ids.new("ch")
        txn = self.balance_transaction(fee_id, amount, "usd", created, "application_fee")
        account = r.choice(self.destinations) if self.destinations else "acct_1" + self.ids.new("x")[5:21]
        fee = {"id": fee_id, "object": "application_fee", "account": account, "amount": amount,
               "amount_refunded": 0, "application": "ca_1" + self.ids.new("x")[5:], "balance_transaction": txn["id"],
               "charge": charge, "created": created, "currency": "usd",
               "fee_source": {"charge": charge, "type": "charge"}, "livemode": self.livemode,
               "originating_transaction": None, "refunded": False}
        self.add("application_fees", fee, fields)
        self.remember("application_fees", fee)
        self.emit("application_fee.created", "application_fees", fee_id, created)
        if refunds is None:
            refunds = self.big("application_fees", 11, 15) or r.choice([0, 0, 0, 1])
        self.refund_fee(fee, refunds)
        return fee

    def refund_fee(self, fee: dict, n: int, at: int | None = None) -> list[dict]:
        """`n` partial refunds; each sends `application_fee.refunded` with the fee's new totals."""
        def refund(fee: dict, amount: int, when: int) -> dict:
            refund_id = self.ids.new("fr")
            txn = self.balance_transaction(refund_id, -amount, "usd", when, "application_fee_refund")
            return {"id": refund_id, "object": "fee_refund", "amount": amount, "balance_transaction": txn["id"],
                    "created": when, "currency": fee["currency"], "fee": fee["id"], "metadata": {}}
        return self.return_in_parts("application_fees", fee, n, at, items="application_fee_refunds", verb="refunded",
                                    part=20, within_days=20, make=refund)
