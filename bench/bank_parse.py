"""camt.053 parsing: entries per second and peak memory, at two sizes (issue 19).

Writes a camt.053.001.08 statement of ``--entries`` entries (and one of a quarter of
that) to a temporary folder, then reads each in a fresh child process with
``shared.bank.formats.read_statement_file`` and reports entries/s and the child's peak
RSS. Streaming means the peak barely moves between the two sizes: the last line gives
the ratio.

    .venv/bin/python bench/bank_parse.py                  # 1,000,000 and 250,000 entries
    .venv/bin/python bench/bank_parse.py --entries 100000 # a quick look
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
<BkToCstmrStmt><GrpHdr><MsgId>BENCH</MsgId><CreDtTm>2026-03-03T06:00:00Z</CreDtTm></GrpHdr>
<Stmt><Id>BENCH-1</Id><CreDtTm>2026-03-03T06:00:00Z</CreDtTm>
<Acct><Id><IBAN>NL91ABNA0417164300</IBAN></Id><Ccy>EUR</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">0.00</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-03-01</Dt></Dt></Bal>
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{closing}</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-03-02</Dt></Dt></Bal>
"""
ENTRY = """<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
<BookgDt><Dt>2026-03-02</Dt></BookgDt><ValDt><Dt>2026-03-02</Dt></ValDt>
<AcctSvcrRef>REF{number:09d}</AcctSvcrRef><BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd>
<SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd><NtryDtls><TxDtls><Refs>
<EndToEndId>po_{number:09d}</EndToEndId></Refs><RltdPties><Dbtr><Pty><Nm>Example Payments</Nm>
</Pty></Dbtr><DbtrAcct><Id><IBAN>GB29NWBK60161331926819</IBAN></Id></DbtrAcct></RltdPties>
<RmtInf><Ustrd>PAYOUT po_{number:09d}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>
"""
TAIL = "</Stmt></BkToCstmrStmt></Document>\n"


def amount_minor(number: int) -> int:
    """The generated entry's amount: 1.00 to 999.99, varied."""
    return 100 + number * 7919 % 99900


def write_statement(path: Path, entries: int) -> None:
    """A balanced camt.053 of ``entries`` credits, written as it goes."""
    closing = sum(amount_minor(number) for number in range(entries))
    with path.open("w", encoding="utf-8") as out:
        out.write(HEAD.format(closing=f"{closing // 100}.{closing % 100:02d}"))
        for number in range(entries):
            minor = amount_minor(number)
            out.write(ENTRY.format(amount=f"{minor // 100}.{minor % 100:02d}", number=number))
        out.write(TAIL)


def read_in_this_process(path: Path) -> dict[str, float]:
    """Read the whole file, counting entries; the figures of this process."""
    from shared.bank.formats import read_statement_file
    from shared.bank.model import BankEntry, BankStatement

    started = time.perf_counter()
    entries = 0
    balanced = None
    with path.open("rb") as source:
        for item in read_statement_file(source):
            if isinstance(item, BankEntry):
                entries += 1
            elif isinstance(item, BankStatement):
                balanced = item.balanced
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"entries": entries, "seconds": seconds, "peak_kib": peak_kib, "balanced": balanced}


def measure(path: Path) -> dict[str, float]:
    """The figures of a fresh child process reading ``path``."""
    output = subprocess.run(
        [sys.executable, __file__, "--child", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(read_in_this_process(arguments.child)))
        return
    sizes = (arguments.entries // 4, arguments.entries)
    figures = {}
    with tempfile.TemporaryDirectory(prefix="recon-bank-bench-") as folder:
        for size in sizes:
            path = Path(folder) / f"camt053-{size}.xml"
            write_statement(path, size)
            megabytes = path.stat().st_size / 1e6
            figures[size] = result = measure(path)
            path.unlink()
            print(
                f"{size:>9,} entries  {megabytes:7.1f} MB  {result['seconds']:7.2f} s  "
                f"{result['entries'] / result['seconds']:>9,.0f} entries/s  "
                f"peak RSS {result['peak_kib'] / 1024:6.1f} MiB  balanced={result['balanced']}"
            )
    small, large = (figures[size]["peak_kib"] for size in sizes)
    print(f"peak RSS at {sizes[1]:,} / at {sizes[0]:,} entries: {large / small:.2f}")


if __name__ == "__main__":
    main()
