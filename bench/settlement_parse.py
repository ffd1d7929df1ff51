"""A generated Adyen Settlement details report, for bench/settlements.py.

``generate`` writes settled rows (a mix of currencies, fees in every component, a payout
per currency at the end). The report is no longer parsed in Python (the import reads its
body in PostgreSQL), so this module only makes the data; ``resident_mb`` reads the
process's memory.
"""

from __future__ import annotations

import csv
import random
import resource
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from currencies import CURRENCIES

from shared.values.money import format_minor

BATCH = "900"
HEADER = [
    "Company Account", "Merchant Account", "Psp Reference", "Merchant Reference",
    "Payment Method", "Creation Date", "TimeZone", "Type", "Modification Reference",
    "Gross Currency", "Gross Debit (GC)", "Gross Credit (GC)", "Exchange Rate",
    "Net Currency", "Net Debit (NC)", "Net Credit (NC)", "Commission (NC)", "Markup (NC)",
    "Scheme Fees (NC)", "Interchange (NC)", "Payment Method Variant",
    "Modification Merchant Reference", "Batch Number", "Booking Date", "Booking Date TimeZone",
]  # fmt: skip


def plain(amount_minor: int, currency: str) -> str:
    """An amount as Adyen writes it: major units, no thousands separator."""
    return format_minor(amount_minor, currency).replace(",", "")


def generate(
    path: Path, lines: int, seed: int, on_settled: Callable[[int, int, str], None] | None = None
) -> None:
    """``lines`` rows (settled rows, then one payout per currency of batch ``BATCH``) in the
    Adyen layout written to ``path``; ``on_settled(number, gross, currency)`` is told each
    settled row (bench/settlements.py writes the payment it settles)."""
    rng = random.Random(seed)
    codes = [code for code, *_ in CURRENCIES]
    weights = [weight for _, weight, *_ in CURRENCIES]
    net_by_currency: Counter[str] = Counter()
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(HEADER)
        for number in range(lines - len(codes)):
            currency = rng.choices(codes, weights)[0]
            _, _, low, high, step = next(entry for entry in CURRENCIES if entry[0] == currency)
            gross = rng.randrange(low, high, step)
            fees = [gross // 200, gross // 1000, gross // 500] if step == 1 else [0, 0, 0]
            net = gross - sum(fees)
            net_by_currency[currency] += net
            writer.writerow([
                "Bench", "BenchShop", f"P{number:015d}", f"ORDER-{number}", "visa",
                "2026-05-05 10:00:00", "UTC", "Settled", f"M{number:015d}", currency, "",
                plain(gross, currency), "1", currency, "", plain(net, currency), "",
                *(plain(fee, currency) for fee in fees), "visacredit", "", BATCH,
                "2026-05-05 21:00:00", "UTC",
            ])  # fmt: skip
            if on_settled is not None:
                on_settled(number, gross, currency)
        for currency in codes:
            writer.writerow([
                "Bench", "BenchShop", "", "", "", "2026-05-05 22:00:00", "UTC",
                "MerchantPayout", f"TX{BATCH}XT batch {BATCH}", "", "", "", "", currency,
                plain(net_by_currency[currency], currency), "", "", "", "", "", "", "", BATCH,
                "2026-05-05 22:00:00", "UTC",
            ])  # fmt: skip


def resident_mb() -> float:
    """The process's resident memory now, in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 1e6
