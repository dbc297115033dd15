"""What every dialect's income / transaction log reads from a ledger posting: whether a
ledger account is the user's (wallet or isolated margin) and which symbol a posting's
reference names. The rows themselves are each dialect's."""

from __future__ import annotations

from perpsim.sim.exchange import Exchange


def owned_by(name: str, account_id: str) -> bool:
    """True for the account's own ledger accounts (``wallet:<id>:…``, ``isolated:<id>:…``):
    a posting between two of them is a move inside the account, not income."""
    parts = name.split(":")
    return len(parts) >= 3 and parts[0] in ("wallet", "isolated") and parts[1] == account_id


def posting_symbol(ex: Exchange, ref: str) -> str:
    """The symbol a posting's ``ref`` names (an order's, a funding / liquidation / ADL
    event's); "" for transfers and deposits."""
    kind, _, rest = ref.partition(":")
    if kind == "order":
        order = ex.orders.get(int(rest)) if rest.isdigit() else None
        return order.symbol if order is not None else ""
    if kind in ("funding", "liquidation", "adl"):
        return rest.split(":")[0]
    return ""
