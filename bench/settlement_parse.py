"""Parsing a generated Adyen Settlement details report: lines per second and memory.

Writes ``--lines`` settled rows (a mix of currencies, fees in every component, a payout
per currency at the end) to a temporary file, then parses it as the import does and
prints the rate and the process's resident memory at each quarter and at its peak:
flat memory means the rows stream. No database is involved.
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from currencies import CURRENCIES

from shared.settlements.layouts import read_settlement_report
from shared.settlements.model import ReportPayout
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


def parse(path: Path, lines: int) -> None:
    """Parse ``path`` as the import does, printing the rate and the memory."""
    quarter = max(lines // 4, 1)
    counted = Counter()
    started = time.perf_counter()
    with path.open("rb") as binary:
        for row in read_settlement_report(binary).rows:
            counted["payouts" if isinstance(row, ReportPayout) else "lines"] += 1
            if counted["lines"] % quarter == 0 and not isinstance(row, ReportPayout):
                print(f"  {counted['lines']:>9,} lines  resident {resident_mb():6.1f} MB")
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    print(f"parsed {counted['lines']:,} lines and {counted['payouts']} payouts in {elapsed:.1f} s")
    print(f"rate {counted['lines'] / elapsed:,.0f} lines/s; peak resident {peak:.1f} MB")


def main() -> None:
    """Generate, then parse."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=18)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "settlement_details.csv"
        started = time.perf_counter()
        generate(path, arguments.lines, arguments.seed)
        size, took = path.stat().st_size / 1e6, time.perf_counter() - started
        print(f"generated {arguments.lines:,} lines ({size:.0f} MB) in {took:.1f} s")
        parse(path, arguments.lines)


if __name__ == "__main__":
    main()
