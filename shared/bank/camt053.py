"""ISO 20022 camt.053 (bank-to-customer statement), schema versions .001.02 to .001.13.

Streamed: lxml's iterparse reads the file object as it goes, each direct child of a
``Stmt`` (header parts, balances, entries) is read when it ends and then removed, so
memory stays flat whatever the number of entries. The parser is hardened: no network, no
DTD loaded, no entity resolved; a document that declares a DOCTYPE at all (a DTD, entity
declarations, an external reference) is refused before its root element is read
(:class:`ForbiddenXml`).

The reader is tolerant across versions: it takes ``Sts`` as text (up to .06) or
``Sts/Cd`` (.07 on), a party's name at ``Dbtr/Nm`` or ``Dbtr/Pty/Nm``, a date as
``Dt`` or the date of ``DtTm``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import IO, Any

from lxml import etree
from lxml.etree import _Element as Element

from shared.bank.model import (
    AccountIdentification,
    BankEntry,
    ForbiddenXml,
    StatementAssembler,
    StatementHeader,
    StatementItem,
    TransactionCodes,
    UnreadableStatement,
)
from shared.platform.errors import ValidationFailed
from shared.values.money import minor_units, normalise_currency
from shared.values.text import one_line

FORMAT = "camt053"
NAMESPACE_PREFIX = "urn:iso:std:iso:20022:tech:xsd:camt.053.001."
SUPPORTED_VERSIONS = frozenset(f"{number:02d}" for number in range(2, 14))
OPENING_CODES = ("OPBD", "PRCD")  # opening booked; else the previous closing booked
CLOSING_CODE = "CLBD"
BOOKED = "BOOK"
SIGNS = {"CRDT": 1, "DBIT": -1}


def _refuse(reason: str, location: str) -> UnreadableStatement:
    return UnreadableStatement(reason, format=FORMAT, location=location)


class _Part:
    """One ended element flattened once: the texts (and attributes, as ``path@name``) of
    its descendants by relative path (``"NtryDtls/TxDtls/Refs/EndToEndId"``), and how
    many elements each path has. One walk is far cheaper than an XPath per field."""

    def __init__(self, element: Element, namespace_length: int) -> None:
        self.element_text = element.text
        self.texts: dict[str, list[str]] = {}
        self.counts: dict[str, int] = {}
        self._walk(element, "", namespace_length)

    def _walk(self, element: Element, prefix: str, namespace_length: int) -> None:
        for child in element:
            tag = child.tag
            if not isinstance(tag, str):
                continue
            path = prefix + tag[namespace_length:]
            self.counts[path] = self.counts.get(path, 0) + 1
            text = child.text
            if text is not None and (text := text.strip()):
                self.texts.setdefault(path, []).append(text)
            for name, value in child.attrib.items():
                self.texts.setdefault(f"{path}@{name}", []).append(value)
            if len(child):
                self._walk(child, path + "/", namespace_length)

    def text(self, *paths: str) -> str | None:
        """The first text at the first of ``paths`` that has one."""
        for path in paths:
            found = self.texts.get(path)
            if found:
                return found[0]
        return None

    def day(self, path: str, location: str) -> date | None:
        """The date at ``path/Dt``, else the date (as written) of ``path/DtTm``; a path
        ending in ``DtTm`` is a date-time itself."""
        plain = None if path.endswith("DtTm") else self.text(f"{path}/Dt")
        stamp = self.text(path if path.endswith("DtTm") else f"{path}/DtTm")
        try:
            if plain is not None:
                return date.fromisoformat(plain)
            return None if stamp is None else datetime.fromisoformat(stamp).date()
        except ValueError:
            shown = (plain or stamp or "")[:40]
            raise _refuse(f"{path} {shown!r} is not a date", location) from None

    def signed_amount(self, location: str) -> tuple[int, str]:
        """(signed minor units, currency) of ``Amt`` with ``CdtDbtInd``."""
        amount, currency = self.text("Amt"), self.text("Amt@Ccy")
        indicator = self.text("CdtDbtInd")
        if amount is None or indicator not in SIGNS:
            raise _refuse("needs Amt with Ccy and CdtDbtInd CRDT or DBIT", location)
        try:
            currency = normalise_currency(currency or "")
            return SIGNS[indicator] * minor_units(amount, currency), currency
        except ValidationFailed as error:
            raise _refuse(error.detail, f"{location}/Amt") from None


def _entry(part: _Part, location: str) -> BankEntry | None:
    """The entry of an ``Ntry``; None when it is not booked."""
    if part.text("Sts/Cd", "Sts") != BOOKED:
        return None
    amount, currency = part.signed_amount(location)
    booked = part.day("BookgDt", location)
    if booked is None:
        raise _refuse("a booked entry needs BookgDt", location)
    # Counterparty and end-to-end id belong to one transaction: a batch has none.
    single = part.counts.get("NtryDtls/TxDtls", 0) == 1
    party, account = ("Dbtr", "DbtrAcct") if amount >= 0 else ("Cdtr", "CdtrAcct")
    details = "NtryDtls/TxDtls/"
    return BankEntry(
        booking_date=booked,
        value_date=part.day("ValDt", location),
        amount_minor=amount,
        currency=currency,
        counterparty_name=one_line(
            part.text(f"{details}RltdPties/{party}/Nm", f"{details}RltdPties/{party}/Pty/Nm")
        )
        if single
        else None,
        counterparty_account=part.text(
            f"{details}RltdPties/{account}/Id/IBAN", f"{details}RltdPties/{account}/Id/Othr/Id"
        )
        if single
        else None,
        remittance_text=_remittance(part),
        bank_reference=part.text("AcctSvcrRef"),
        end_to_end_id=part.text(f"{details}Refs/EndToEndId") if single else None,
        codes=TransactionCodes(
            domain=part.text("BkTxCd/Domn/Cd"),
            family=part.text("BkTxCd/Domn/Fmly/Cd"),
            subfamily=part.text("BkTxCd/Domn/Fmly/SubFmlyCd"),
            proprietary=part.text("BkTxCd/Prtry/Cd"),
        ),
        reversal=part.text("RvslInd") == "true",
    )


def _remittance(part: _Part) -> str | None:
    """The unstructured remittance lines (each once, in order), else the creditor
    references, else the transactions' additional information, else the entry's."""
    for path in (
        "NtryDtls/TxDtls/RmtInf/Ustrd",
        "NtryDtls/TxDtls/RmtInf/Strd/CdtrRefInf/Ref",
        "NtryDtls/TxDtls/AddtlTxInf",
        "AddtlNtryInf",
    ):
        if path in part.texts:
            return one_line(" ".join(dict.fromkeys(part.texts[path])))
    return None


class _Statement:
    """What one Stmt has declared so far, and its entries' assembler once they start."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.entries = 0
        self.statement_id: str | None = None
        self.account: AccountIdentification | None = None
        self.account_currency: str | None = None
        self.period: tuple[date | None, date | None] = (None, None)
        # code → (minor, currency, where, date)
        self.balances: dict[str, tuple[int, str, str, date | None]] = {}
        self.balance_count = 0
        self.assembler: StatementAssembler | None = None

    def read_account(self, part: _Part) -> None:
        """The account's IBAN (else other id) and currency from an ended ``Acct``."""
        iban = part.text("Id/IBAN")
        other = part.text("Id/Othr/Id")
        if iban or other:
            self.account = AccountIdentification(
                value=one_line(iban or other) or "", scheme="iban" if iban else "other"
            )
        currency = part.text("Ccy")
        if currency is not None:
            try:
                self.account_currency = normalise_currency(currency)
            except ValidationFailed as error:
                raise _refuse(error.detail, f"{self.location}/Acct/Ccy") from None

    def open_entries(self) -> StatementHeader:
        """The header, now that every part before the entries is read."""
        header = self.header()
        self.assembler = StatementAssembler(header)
        return header

    @property
    def location(self) -> str:
        """Where this statement is, for messages."""
        return f"Stmt[{self.number}]"

    def header(self) -> StatementHeader:
        """The header, once the parts before the first entry are read."""
        if self.statement_id is None or self.account is None:
            raise _refuse("needs Id and Acct/Id (IBAN or Othr/Id)", self.location)
        opening = next((self.balances[c] for c in OPENING_CODES if c in self.balances), None)
        closing = self.balances.get(CLOSING_CODE)
        currency = self.account_currency or next(
            (balance[1] for balance in (opening, closing) if balance), None
        )
        if currency is None:
            raise _refuse(
                "no currency: neither Acct/Ccy nor an OPBD or CLBD balance", self.location
            )
        for balance in (opening, closing):
            if balance is not None and balance[1] != currency:
                raise _refuse(f"balance in {balance[1]} on a {currency} statement", balance[2])
        return StatementHeader(
            format=FORMAT,
            statement_id=self.statement_id,
            account=self.account,
            currency=currency,
            opening_balance_minor=opening[0] if opening else None,
            closing_balance_minor=closing[0] if closing else None,
            # The declared period, else the balances' dates.
            period_start=self.period[0] or (opening[3] if opening else None),
            period_end=self.period[1] or (closing[3] if closing else None),
        )


def read_camt053(source: IO[bytes]) -> Iterator[StatementItem]:
    """The statements of a camt.053 document, streamed (see the module docstring).

    Raises :class:`ForbiddenXml` for a DTD, entities or external references, and
    :class:`UnreadableStatement` naming the line or element path for anything else
    (not XML, truncated, another schema, a missing or malformed required element).
    """
    events = etree.iterparse(
        source,
        events=("start", "end"),
        tag=WATCHED_TAGS,
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        yield from _walk(events)
    except etree.XMLSyntaxError as error:
        line, column = error.position
        raise _refuse(
            f"not well-formed XML ({error.msg.split(',')[0][:120]}); is the file truncated?",
            f"line {line}, column {column}",
        ) from None


def _refuse_doctype(root: Element) -> None:
    """Refuse a document that declares a DOCTYPE: its DTD, entities and external
    references were neither loaded nor expanded, and are not accepted either."""
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or info.system_url:
        raise ForbiddenXml(
            "DTDs, entity declarations and external references are refused; "
            "none is ever expanded or fetched",
            format=FORMAT,
            location="DOCTYPE",
        )


# The direct children of Stmt that are read; every other one is skipped.
STATEMENT_PARTS = ("Id", "FrToDt", "Acct", "Bal", "Ntry")
WATCHED_TAGS = tuple(f"{{*}}{local}" for local in ("Document", "Stmt", *STATEMENT_PARTS))


def _walk(events: Any) -> Iterator[StatementItem]:
    """Statements as their parts end; each read Stmt child, and each Stmt, is removed from
    its parent once read, so the tree never holds more than one of them. Only the watched
    tags produce events, which keeps the Python work per entry small."""
    statement = _Statement(0)
    namespace = ""
    for event, element in events:
        if not namespace:  # the root's start: nothing of the document is read before it
            _refuse_doctype(element)
            namespace = _document_namespace(str(element.tag))
            statement_tag, entry_tag = f"{{{namespace}}}Stmt", f"{{{namespace}}}Ntry"
            continue
        tag = element.tag
        parent = element.getparent()
        if tag == statement_tag:
            if event == "start":
                statement = _Statement(statement.number + 1)
                continue
            if statement.assembler is None:
                yield statement.open_entries()
            yield statement.assembler.close()
        elif parent is None or parent.tag != statement_tag:
            continue
        elif event == "start":
            if tag == entry_tag and statement.assembler is None:
                yield statement.open_entries()
            continue
        else:
            part = _Part(element, len(namespace) + 2)
            yield from _statement_part(statement, tag[len(namespace) + 2 :], part)
        parent.remove(element)
    if not namespace:  # no Document root: the watched tags never matched
        root = events.root
        if root is not None:
            _refuse_doctype(root)
        _document_namespace("" if root is None else str(root.tag))
    if statement.number == 0:
        raise _refuse("no Stmt: not a bank-to-customer statement", "Document/BkToCstmrStmt")


def _document_namespace(tag: str) -> str:
    """The namespace of a camt.053 Document root of a supported version, else refused."""
    namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    version = namespace.removeprefix(NAMESPACE_PREFIX)
    if local != "Document" or not namespace.startswith(NAMESPACE_PREFIX):
        raise _refuse(
            f"root element {local[:40]!r} in namespace {namespace[:80]!r} is not a camt.053 "
            f"Document ({NAMESPACE_PREFIX}NN)",
            "line 1",
        )
    if version not in SUPPORTED_VERSIONS:
        raise _refuse(
            f"camt.053.001.{version[:10]} is not a supported version "
            f"(.{min(SUPPORTED_VERSIONS)} to .{max(SUPPORTED_VERSIONS)})",
            "Document",
        )
    return namespace


def _statement_part(statement: _Statement, local: str, part: _Part) -> Iterator[StatementItem]:
    """Read one ended child of Stmt into ``statement``; an entry is yielded."""
    where = f"{statement.location}/{local}"
    if local == "Id":
        statement.statement_id = one_line(part.element_text)
    elif local == "FrToDt":
        statement.period = (part.day("FrDtTm", where), part.day("ToDtTm", where))
    elif local == "Acct":
        statement.read_account(part)
    elif local == "Bal":
        statement.balance_count += 1
        where = f"{statement.location}/Bal[{statement.balance_count}]"
        code = part.text("Tp/CdOrPrtry/Cd")
        if code in (*OPENING_CODES, CLOSING_CODE) and code not in statement.balances:
            minor, currency = part.signed_amount(where)
            statement.balances[code] = (minor, currency, where, part.day("Dt", where))
    elif local == "Ntry":
        statement.entries += 1
        where = f"{statement.location}/Ntry[{statement.entries}]"
        entry = _entry(part, where)
        if entry is None:
            statement.assembler.skip_unbooked()
        else:
            yield statement.assembler.add(entry, location=where)
