"""What a settlement line settles: its provider record and internal payment, in SQL.

One rule, used where lines are written (shared/settlements/imports.py links each line as
it is inserted) and where they are linked again later (shared/settlements/matching.py,
for lines whose payment arrived after them):

- the provider record of the line's provider whose reference is the line's PaymentIntent
  (Stripe), else the line's provider reference;
- the payment that record is bound to, else the payment whose ``external_id`` is the
  line's merchant reference — of the line's provider, or of any provider for a provider
  that has no payments of its own (PayPal).

Both are hash-joinable equalities on unique keys, so a line joins at most one of each.
"""

from __future__ import annotations

from shared.models import PROVIDERS

# The providers whose payments recon holds, as an SQL array literal (constants only).
_PAYMENT_PROVIDERS = "ARRAY[" + ", ".join(f"'{name}'" for name in PROVIDERS) + "]"

# The joins that find a line's links; {line} is the alias of a relation with the line's
# provider_reference, payment_intent_id and merchant_reference, {provider} its provider.
LINK_JOINS = """
LEFT JOIN provider_records AS by_intent
  ON by_intent.org_id = :org_id AND by_intent.provider = {provider}
 AND by_intent.provider_reference = {line}.payment_intent_id
LEFT JOIN provider_records AS by_reference
  ON by_reference.org_id = :org_id AND by_reference.provider = {provider}
 AND by_reference.provider_reference = {line}.provider_reference
LEFT JOIN payments AS by_merchant
  ON by_merchant.org_id = :org_id AND by_merchant.external_id = {line}.merchant_reference
 AND (by_merchant.provider = {provider} OR {provider} <> ALL({payment_providers}))
"""
# The links the joins found: (provider_record_id, payment_id).
LINK_COLUMNS = (
    "coalesce(by_intent.id, by_reference.id) AS provider_record_id, "
    "coalesce(CASE WHEN by_intent.id IS NOT NULL THEN by_intent.payment_id "
    "ELSE by_reference.payment_id END, by_merchant.id) AS payment_id"
)


def link_joins(line: str, provider: str) -> str:
    """:data:`LINK_JOINS` for the line relation aliased ``line`` of provider ``provider``
    (an SQL expression: a column or a bind parameter)."""
    return LINK_JOINS.format(line=line, provider=provider, payment_providers=_PAYMENT_PROVIDERS)
