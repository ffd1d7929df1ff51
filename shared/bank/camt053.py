"""ISO 20022 camt.053 (bank-to-customer statement), schema versions .001.02 to .001.13.

Streamed: lxml's iterparse reads the file object as it goes and reports only the root,
each ``Stmt`` and each ``Ntry``. A statement's header parts (``Id``, ``FrToDt``,
``Acct``, ``Bal``) are read when its first entry starts, each entry when it ends, along
the element paths its fields are read at; each is then removed, so memory stays flat
whatever the number of entries. The parser is hardened: no network, no
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
from functools import cache, lru_cache
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


# Where an entry's single transaction is; its counterparty, by the entry's direction (credit:
# the debtor paid), as (name paths, account paths); its remittance text, by preference.
TRANSACTION = "NtryDtls/TxDtls"
PARTIES = {
    credit: tuple(
        tuple(f"{TRANSACTION}/RltdPties/{party}{leaf}" for leaf in leaves)
        for party, leaves in (
            ("Dbtr" if credit else "Cdtr", ("/Nm", "/Pty/Nm")),
            ("DbtrAcct" if credit else "CdtrAcct", ("/Id/IBAN", "/Id/Othr/Id")),
        )
    )
    for credit in (True, False)
}
REMITTANCE_PATHS = (
    f"{TRANSACTION}/RmtInf/Ustrd",
    f"{TRANSACTION}/RmtInf/Strd/CdtrRefInf/Ref",
    f"{TRANSACTION}/AddtlTxInf",
    "AddtlNtryInf",
)
END_TO_END_ID = f"{TRANSACTION}/Refs/EndToEndId"
CODE_PATHS = (
    "BkTxCd/Domn/Cd", "BkTxCd/Domn/Fmly/Cd", "BkTxCd/Domn/Fmly/SubFmlyCd", "BkTxCd/Prtry/Cd",
)  # fmt: skip
# What each kind of Stmt part is read at: element paths relative to the part, and an
# attribute as ``path@name``. A part is walked once, visiting only these elements.
ENTRY_PATHS = (
    "Amt", "Amt@Ccy", "CdtDbtInd", "Sts", "Sts/Cd", "RvslInd", "AcctSvcrRef",
    "BookgDt/Dt", "BookgDt/DtTm", "ValDt/Dt", "ValDt/DtTm", END_TO_END_ID, *REMITTANCE_PATHS,
    *CODE_PATHS, *(path for paths in PARTIES[True] + PARTIES[False] for path in paths),
)  # fmt: skip
BALANCE_PATHS = ("Tp/CdOrPrtry/Cd", "Amt", "Amt@Ccy", "CdtDbtInd", "Dt/Dt", "Dt/DtTm")
ACCOUNT_PATHS = ("Id/IBAN", "Id/Othr/Id", "Ccy")
PERIOD_PATHS = ("FrDtTm", "ToDtTm")


class _Layout:
    """``paths`` as a tree of one namespace's tags. Each node is (its path, its children,
    the attributes read on it as (name, ``path@name``), whether its elements are counted:
    only those of ``counted``)."""

    def __init__(self, paths: tuple[str, ...], namespace: str, counted: tuple[str, ...]) -> None:
        self.paths = frozenset(paths)
        self.tree: dict[str, tuple[str, dict, list[tuple[str, str]], bool]] = {}
        for path in (*paths, *counted):
            element_path, _, attribute = path.partition("@")
            children = self.tree
            steps = element_path.split("/")
            for depth, step in enumerate(steps, start=1):
                prefix = "/".join(steps[:depth])
                node = children.setdefault(
                    f"{{{namespace}}}{step}", (prefix, {}, [], prefix in counted)
                )
                children = node[1]
            if attribute:
                node[2].append((attribute, path))


@cache
def _layout(paths: tuple[str, ...], namespace: str, counted: tuple[str, ...] = ()) -> _Layout:
    return _Layout(paths, namespace, counted)


class _Part:
    """One ended element read once: the stripped, non-empty texts (and attributes) at each
    of its layout's paths, in document order, and how many elements each counted path has."""

    def __init__(self, element: Element, layout: _Layout) -> None:
        self.element_text = element.text
        self.layout = layout
        self.texts: dict[str, list[str]] = {}
        self.counts: dict[str, int] = {}
        self._collect(element, layout.tree)

    def _collect(self, element: Element, tree: dict) -> None:
        texts = self.texts
        for child in element:
            node = tree.get(child.tag)
            if node is None:
                continue
            path, children, attributes, counted = node
            text = child.text
            if text is not None and (text := text.strip()):
                if path in texts:
                    texts[path].append(text)
                else:
                    texts[path] = [text]
            if attributes:
                for name, key in attributes:
                    value = child.get(name)
                    if value is not None:
                        texts.setdefault(key, []).append(value)
            if counted:
                self.counts[path] = self.counts.get(path, 0) + 1
            if children:
                self._collect(child, children)

    def text(self, *paths: str) -> str | None:
        """The first text at the first of ``paths`` that has one."""
        for path in paths:
            found = self.texts.get(path)
            if found:
                return found[0]
            if path not in self.layout.paths:
                raise KeyError(f"{path} is not read from this part: add it to its paths")
        return None

    def day(self, path: str, location: str) -> date | None:
        """The date at ``path/Dt``, else the date (as written) of ``path/DtTm``; a path
        ending in ``DtTm`` is a date-time itself."""
        plain_path, stamp_path = _date_paths(path)
        plain = None if plain_path is None else self.text(plain_path)
        try:
            if plain is not None:
                return date.fromisoformat(plain)
            stamp = self.text(stamp_path)
            return None if stamp is None else datetime.fromisoformat(stamp).date()
        except ValueError:
            shown = (plain or self.text(stamp_path) or "")[:40]
            raise _refuse(f"{path} {shown!r} is not a date", location) from None

    def signed_amount(self, location: str) -> tuple[int, str]:
        """(signed minor units, currency) of ``Amt`` with ``CdtDbtInd``."""
        amount, currency = self.text("Amt"), self.text("Amt@Ccy")
        sign = SIGNS.get(self.text("CdtDbtInd"))  # type: ignore[arg-type]
        if amount is None or sign is None:
            raise _refuse("needs Amt with Ccy and CdtDbtInd CRDT or DBIT", location)
        try:
            currency = _currency(currency or "")
            return sign * minor_units(amount, currency), currency
        except ValidationFailed as error:
            raise _refuse(error.detail, f"{location}/Amt") from None


@cache
def _date_paths(path: str) -> tuple[str | None, str]:
    """(the date's path, the date-time's path) of a date element at ``path``."""
    if path.endswith("DtTm"):
        return None, path
    return f"{path}/Dt", f"{path}/DtTm"


# A file names few currencies and few code combinations, once per entry: each is checked
# or built once (bounded, so hostile variety cannot grow them).
@lru_cache(maxsize=64)
def _currency(code: str) -> str:
    return normalise_currency(code)


@lru_cache(maxsize=256)
def _codes(domain: str | None, family: str | None, subfamily: str | None,
           proprietary: str | None) -> TransactionCodes:  # fmt: skip
    return TransactionCodes(
        domain=domain, family=family, subfamily=subfamily, proprietary=proprietary
    )


def _entry(part: _Part, location: str) -> BankEntry | None:
    """The entry of an ``Ntry``; None when it is not booked."""
    if part.text("Sts/Cd", "Sts") != BOOKED:
        return None
    amount, currency = part.signed_amount(location)
    booked = part.day("BookgDt", location)
    if booked is None:
        raise _refuse("a booked entry needs BookgDt", location)
    # Counterparty and end-to-end id belong to one transaction: a batch has none.
    name = account = end_to_end_id = None
    if part.counts.get(TRANSACTION) == 1:
        names, accounts = PARTIES[amount >= 0]
        name, account = one_line(part.text(*names)), part.text(*accounts)
        end_to_end_id = part.text(END_TO_END_ID)
    return BankEntry(
        booking_date=booked,
        value_date=part.day("ValDt", location),
        amount_minor=amount,
        currency=currency,
        counterparty_name=name,
        counterparty_account=account,
        remittance_text=_remittance(part),
        bank_reference=part.text("AcctSvcrRef"),
        end_to_end_id=end_to_end_id,
        codes=_codes(*map(part.text, CODE_PATHS)),
        reversal=part.text("RvslInd") == "true",
    )


def _remittance(part: _Part) -> str | None:
    """The unstructured remittance lines (each once, in order), else the creditor
    references, else the transactions' additional information, else the entry's."""
    for path in REMITTANCE_PATHS:
        found = part.texts.get(path)
        if found:
            return one_line(found[0] if len(found) == 1 else " ".join(dict.fromkeys(found)))
    return None


class _Statement:
    """What one Stmt has declared so far, and its entries' assembler once they start."""

    def __init__(self, number: int, namespace: str) -> None:
        self.number = number
        self.parts = _part_layouts(namespace)
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

    def read_parts(self, statement: Element, before: Element | None = None) -> None:
        """Read and remove the parts of ``statement`` (the ``Stmt``) that precede ``before``
        (all of them without it); other children stay."""
        parts = []
        for child in statement:
            if child is before:
                break
            if child.tag in self.parts:
                parts.append(child)
        for child in parts:
            local, layout = self.parts[child.tag]
            self._read_part(local, _Part(child, layout))
            statement.remove(child)

    def _read_part(self, local: str, part: _Part) -> None:
        where = f"{self.location}/{local}"
        if local == "Id":
            self.statement_id = one_line(part.element_text)
        elif local == "FrToDt":
            self.period = (part.day("FrDtTm", where), part.day("ToDtTm", where))
        elif local == "Acct":
            self.read_account(part)
        else:
            self.balance_count += 1
            where = f"{self.location}/Bal[{self.balance_count}]"
            code = part.text("Tp/CdOrPrtry/Cd")
            if code in (*OPENING_CODES, CLOSING_CODE) and code not in self.balances:
                minor, currency = part.signed_amount(where)
                self.balances[code] = (minor, currency, where, part.day("Dt", where))

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
        if ENTITY_GUARD in error.msg:
            # libxml2 (lxml 6.2 on) stops an entity bomb before the root element, where
            # the DOCTYPE is refused otherwise: the same refusal.
            raise _forbidden() from None
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
        raise _forbidden()


# What libxml2 says when it stops a document's entities from growing it.
ENTITY_GUARD = "entity amplification"


def _forbidden() -> ForbiddenXml:
    return ForbiddenXml(
        "DTDs, entity declarations and external references are refused; "
        "none is ever expanded or fetched",
        format=FORMAT,
        location="DOCTYPE",
    )


# The children of Stmt that are read, with their paths; every other one is skipped.
STATEMENT_PARTS = {"Id": (), "FrToDt": PERIOD_PATHS, "Acct": ACCOUNT_PATHS, "Bal": BALANCE_PATHS}


@cache
def _part_layouts(namespace: str) -> dict[str, tuple[str, _Layout]]:
    """Each statement part's tag in ``namespace`` → its local name and layout."""
    return {
        f"{{{namespace}}}{local}": (local, _layout(paths, namespace))
        for local, paths in STATEMENT_PARTS.items()
    }


# Only these elements produce events: Python sees two per entry, the rest is lxml's.
WATCHED_TAGS = ("{*}Document", "{*}Stmt", "{*}Ntry")


def _walk(events: Any) -> Iterator[StatementItem]:
    """Statements as they stream: a statement's header is read from the parts before its
    first entry when that entry starts (or when the statement ends, if it has none), each
    entry when it ends. Each read part and entry, and each Stmt, is removed from its parent
    once read, so the tree never holds more than one entry."""
    statement = _Statement(0, "")
    namespace = statement_tag = entry_tag = ""
    entry_layout = _layout((), "")
    for event, element in events:
        tag = element.tag
        if tag == entry_tag:
            parent = element.getparent()
            if parent is None or parent.tag != statement_tag:
                continue
            if event == "start":
                if statement.assembler is None:
                    statement.read_parts(parent, before=element)
                    yield statement.open_entries()
                continue
            statement.entries += 1
            where = f"{statement.location}/Ntry[{statement.entries}]"
            entry = _entry(_Part(element, entry_layout), where)
            if entry is None:
                statement.assembler.skip_unbooked()
            else:
                yield statement.assembler.add(entry, location=where)
            parent.remove(element)
        elif not namespace:  # the root's start: nothing of the document is read before it
            _refuse_doctype(element)
            namespace = _document_namespace(str(tag))
            statement_tag, entry_tag = f"{{{namespace}}}Stmt", f"{{{namespace}}}Ntry"
            entry_layout = _layout(ENTRY_PATHS, namespace, (TRANSACTION,))
        elif tag != statement_tag:
            continue
        elif event == "start":
            statement = _Statement(statement.number + 1, namespace)
        else:
            # Parts after the entries are read too: a malformed one refuses the file.
            statement.read_parts(element)
            if statement.assembler is None:
                yield statement.open_entries()
            yield statement.assembler.close()
            parent = element.getparent()
            if parent is not None:
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
