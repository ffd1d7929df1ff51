"""The provider's current view of an object, folded from its events in any order.

Pure functions over plain values. Two rules make the fold converge whatever order the
events arrive in: facts and the base status come from the newest event that states
them (ties on the base status go to the further-advanced one), and refunds are kept per
refund id and summed, so a refund seen before its charge counts as soon as the charge
says how much was paid.
"""

from __future__ import annotations

from dataclasses import replace

from shared.matching.record_fields import FOLDED_FIELDS, RecordState, RecordUpdate

# On equal timestamps a status further along its lifecycle wins: a payment that
# succeeded cannot be pending again, and a retry that succeeded beats the failure.
STATUS_RANK = {"pending": 0, "failed": 1, "canceled": 1, "succeeded": 2}


def _newer(update: RecordUpdate, state: RecordState) -> bool:
    return update.event_at >= state.last_event_at


def _fact(new, old, newer: bool):
    if new is None:
        return old
    return new if old is None or newer else old


def _status_wins(update: RecordUpdate, state: RecordState) -> bool:
    if update.payment_status is None:
        return False
    if state.payment_status is None or state.status_at is None:
        return True
    if update.event_at != state.status_at:
        return update.event_at > state.status_at
    return STATUS_RANK[update.payment_status] >= STATUS_RANK[state.payment_status]


def _merged_refunds(old: dict[str, int], new: dict[str, int]) -> dict[str, int]:
    # A refund that failed or was canceled (0) stays withdrawn: none comes back.
    merged = dict(old)
    for refund_id, amount in new.items():
        merged[refund_id] = 0 if merged.get(refund_id) == 0 else amount
    return merged


def new_state(update: RecordUpdate, currency: str) -> RecordState:
    """The state of an object first seen in ``update`` (``currency`` if it states none)."""
    nothing_known = dict.fromkeys(FOLDED_FIELDS)
    empty = RecordState(
        **nothing_known
        | {
            "provider_reference": update.provider_reference,
            "currency": update.currency or currency,
            "last_event_at": update.event_at,
            "occurred_at": update.occurred_at or update.event_at,
            "refunds": {},
            "reported_refunded_minor": 0,
        }
    )
    return merge_update(empty, update)


def merge_update(state: RecordState, update: RecordUpdate) -> RecordState:
    """``state`` with ``update`` folded in; an older event never moves state backwards."""
    newer = _newer(update, state)
    status_wins = _status_wins(update, state)
    dispute_wins = update.dispute_status is not None and (
        state.dispute_at is None or update.event_at >= state.dispute_at
    )
    return replace(
        state,
        currency=_fact(update.currency, state.currency, newer),
        amount_minor=_fact(update.amount_minor, state.amount_minor, newer),
        merchant_reference=_fact(update.merchant_reference, state.merchant_reference, newer),
        customer_ref=_fact(update.customer_ref, state.customer_ref, newer),
        occurred_at=min(state.occurred_at, update.occurred_at or state.occurred_at),
        payment_status=update.payment_status if status_wins else state.payment_status,
        status_at=update.event_at if status_wins else state.status_at,
        refunds=_merged_refunds(state.refunds, update.refunds),
        reported_refunded_minor=(
            update.reported_refunded_minor
            if update.reported_refunded_minor is not None and newer
            else state.reported_refunded_minor
        ),
        dispute_status=update.dispute_status if dispute_wins else state.dispute_status,
        dispute_amount_minor=(
            update.dispute_amount_minor if dispute_wins else state.dispute_amount_minor
        ),
        dispute_at=update.event_at if dispute_wins else state.dispute_at,
        dispute_reason=update.dispute_reason if dispute_wins else state.dispute_reason,
        dispute_provider_status=(
            update.dispute_provider_status if dispute_wins else state.dispute_provider_status
        ),
        dispute_evidence_due_at=(
            update.dispute_evidence_due_at if dispute_wins else state.dispute_evidence_due_at
        ),
        last_event_at=max(state.last_event_at, update.event_at),
    )


def refunded_total(state: RecordState) -> int:
    """Minor units refunded: the provider's stated total or the sum of refunds, the larger."""
    return max(state.reported_refunded_minor, sum(state.refunds.values()))


def derived_status(state: RecordState) -> str:
    """The normalised status (docs/design.md): refunds make a succeeded payment refunded."""
    refunded = refunded_total(state)
    if refunded > 0 and state.payment_status in (None, "succeeded"):
        if state.amount_minor is not None and refunded >= state.amount_minor:
            return "refunded"
        return "partially_refunded"
    return state.payment_status or "pending"
