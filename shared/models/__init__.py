"""The data model of the service (SQLAlchemy 2 typed ORM).

Money is always ``*_minor`` (BIGINT minor units) plus an upper-case ISO 4217 ``currency``.
Timestamps are ``timestamptz`` in UTC. Enumerations are text columns guarded by CHECK
constraints, so adding a value is a plain migration (see docs/decisions.md).
"""

from __future__ import annotations

from shared.models.audit import (
    UUID_TEXT as UUID_TEXT,
)
from shared.models.audit import (
    ReconciliationActionLog as ReconciliationActionLog,
)
from shared.models.audit import (
    SettingsLogEntry as SettingsLogEntry,
)
from shared.models.base import (
    ACTIONS as ACTIONS,
)
from shared.models.base import (
    BASE_STATUSES as BASE_STATUSES,
)
from shared.models.base import (
    CASH_DISCREPANCY_TYPES as CASH_DISCREPANCY_TYPES,
)
from shared.models.base import (
    CASH_SUBJECTS as CASH_SUBJECTS,
)
from shared.models.base import (
    DISCREPANCY_LIST_FILTERS as DISCREPANCY_LIST_FILTERS,
)
from shared.models.base import (
    DISCREPANCY_PROVIDERS as DISCREPANCY_PROVIDERS,
)
from shared.models.base import (
    DISCREPANCY_STATUSES as DISCREPANCY_STATUSES,
)
from shared.models.base import (
    DISCREPANCY_SUBJECTS as DISCREPANCY_SUBJECTS,
)
from shared.models.base import (
    DISCREPANCY_TYPES as DISCREPANCY_TYPES,
)
from shared.models.base import (
    DISPUTE_STATUSES as DISPUTE_STATUSES,
)
from shared.models.base import (
    EVENT_STATES as EVENT_STATES,
)
from shared.models.base import (
    ITEM_OUTCOMES as ITEM_OUTCOMES,
)
from shared.models.base import (
    MATCH_METHODS as MATCH_METHODS,
)
from shared.models.base import (
    MATCHING_DISCREPANCY_TYPES as MATCHING_DISCREPANCY_TYPES,
)
from shared.models.base import (
    NAMING_CONVENTION as NAMING_CONVENTION,
)
from shared.models.base import (
    ONE_UNRESOLVED_CONFLICT as ONE_UNRESOLVED_CONFLICT,
)
from shared.models.base import (
    PAYMENT_STATUSES as PAYMENT_STATUSES,
)
from shared.models.base import (
    PAYOUT_STATUSES as PAYOUT_STATUSES,
)
from shared.models.base import (
    PROVIDERS as PROVIDERS,
)
from shared.models.base import (
    ROLES as ROLES,
)
from shared.models.base import (
    RUN_STATUSES as RUN_STATUSES,
)
from shared.models.base import (
    RUN_TRIGGERS as RUN_TRIGGERS,
)
from shared.models.base import (
    SETTLEMENT_LINE_TYPES as SETTLEMENT_LINE_TYPES,
)
from shared.models.base import (
    SETTLEMENT_PROVIDERS as SETTLEMENT_PROVIDERS,
)
from shared.models.base import (
    SEVERITIES as SEVERITIES,
)
from shared.models.base import (
    Base as Base,
)
from shared.models.base import (
    currency_check as currency_check,
)
from shared.models.base import (
    discrepancy_provider as discrepancy_provider,
)
from shared.models.base import (
    dispute_status_check as dispute_status_check,
)
from shared.models.base import (
    heuristic_index as heuristic_index,
)
from shared.models.base import (
    one_of as one_of,
)
from shared.models.base import (
    org_fk as org_fk,
)
from shared.models.base import (
    payment_checks as payment_checks,
)
from shared.models.base import (
    provider_check as provider_check,
)
from shared.models.base import (
    stamped_now as stamped_now,
)
from shared.models.base import (
    uuid_pk as uuid_pk,
)
from shared.models.cash import (
    BANK_FORMATS as BANK_FORMATS,
)
from shared.models.cash import (
    BankAccount as BankAccount,
)
from shared.models.cash import (
    BankEntryRecord as BankEntryRecord,
)
from shared.models.cash import (
    BankPayoutLink as BankPayoutLink,
)
from shared.models.cash import (
    BankPayoutLinkLogEntry as BankPayoutLinkLogEntry,
)
from shared.models.cash import (
    BankPayoutSuggestion as BankPayoutSuggestion,
)
from shared.models.cash import (
    BankStatementRecord as BankStatementRecord,
)
from shared.models.cash import (
    SettlementFile as SettlementFile,
)
from shared.models.cash import (
    SettlementFileChunk as SettlementFileChunk,
)
from shared.models.cash import (
    SettlementLine as SettlementLine,
)
from shared.models.cash import (
    SettlementPayout as SettlementPayout,
)
from shared.models.cash import (
    settlement_provider_check as settlement_provider_check,
)
from shared.models.core import (
    ApiKey as ApiKey,
)
from shared.models.core import (
    Organization as Organization,
)
from shared.models.core import (
    Payment as Payment,
)
from shared.models.core import (
    PendingPaymentMatch as PendingPaymentMatch,
)
from shared.models.core import (
    ProviderAccount as ProviderAccount,
)
from shared.models.core import (
    ProviderEvent as ProviderEvent,
)
from shared.models.core import (
    ProviderRecord as ProviderRecord,
)
from shared.models.core import (
    ReconciliationDiscrepancy as ReconciliationDiscrepancy,
)
from shared.models.core import (
    ReconciliationItem as ReconciliationItem,
)
from shared.models.core import (
    ReconciliationRun as ReconciliationRun,
)
from shared.models.people import (
    PASSWORD_TOKEN_PURPOSES as PASSWORD_TOKEN_PURPOSES,
)
from shared.models.people import (
    PasswordToken as PasswordToken,
)
from shared.models.people import (
    User as User,
)
