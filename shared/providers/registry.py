"""The one list of providers this service accepts webhooks from: name → provider.

Adding a provider is one module (see :mod:`shared.providers.interface`) and one line
here; the webhook routes, ingestion, processing and account handling find it through
:func:`provider_named`.
"""

from __future__ import annotations

from shared.platform.errors import ValidationFailed
from shared.providers import adyen, standard, stripe
from shared.providers.interface import WebhookProvider

REGISTRY: dict[str, WebhookProvider] = {
    provider.name: provider
    for provider in (
        stripe.PROVIDER,
        adyen.PROVIDER,
        standard.PROVIDER,
    )
}
PROVIDER_NAMES = tuple(REGISTRY)


def provider_named(name: str) -> WebhookProvider:
    """The registered provider ``name``, or ValidationFailed listing the known ones."""
    provider = REGISTRY.get(name)
    if provider is None:
        raise ValidationFailed(f"provider must be one of {', '.join(PROVIDER_NAMES)}")
    return provider
