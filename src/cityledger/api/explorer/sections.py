"""The explorer's sections: which module query shows which kind of ledger record, in one registry.

A module that wants a page in the explorer adds one Section here: its module query, the argument
the looked-up id goes in, what search input it recognises, and (where a record mixes public and
less public fields) the fields shown. Sections read only through the node's ABCI queries, so what
the explorer can show is exactly the ledger's content; a section whose module this node does not
run is left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

MAX_ID_CHARS = 200  # longer lookup ids are refused before any query (no ledger id is that long)


@dataclass(frozen=True)
class Section:
    """One kind of record the explorer looks up by id through a module query."""

    slug: str  # the page: /explorer/<slug>
    title: str  # the page's heading and the navigation's label
    module: str
    query: str
    arg: str  # the query argument the id goes in; "" for a section that lists (no id)
    label: str  # the lookup field's label
    search: str = ""  # a regular expression: search input this section recognises ("" for none)
    fields: tuple[str, ...] = ()  # the result's fields shown, in order; () shows all
    listing: str = ""  # a module query answering a page of records, shown without an id
    paged_by: str = "before"  # the listing's cursor: "before" (a record number, newest first) or "after" (a key)

    def recognises(self, text: str) -> bool:
        """True when the search box's text has this section's id syntax."""
        return bool(self.search) and re.fullmatch(self.search, text) is not None

    def public(self, result: Any) -> Any:
        """The result restricted to the section's shown fields."""
        if not self.fields or not isinstance(result, dict):
            return result
        return {name: result[name] for name in self.fields if name in result}


UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"

SECTIONS: tuple[Section, ...] = (
    Section("dids", "DIDs", "identity", "did", "did", "DID", search=r"did:city:[A-Za-z0-9._:-]+"),
    Section("issuers", "Issuers", "identity", "issuers", "", "Credential type"),
    Section("cred-defs", "Credential definitions", "identity", "cred_def", "id", "Credential definition id"),
    Section("schemas", "Credential schemas", "identity", "schema", "id", "Schema id"),
    # No creation index in the state: the city-wide lists run in id order, a key cursor per page.
    Section("devices", "Devices", "devices", "device", "did", "Device DID", listing="list", paged_by="after"),
    Section("consortium", "Consortium", "governance", "consortium", "", "Members"),
    Section("validators", "Validators", "governance", "validators", "", "Validators"),
    # Votes are the proposal's approvals: who approved, until it passed or expired.
    Section("proposals", "Governance proposals", "governance", "proposal", "id", "Proposal number",
            listing="proposals"),
    Section("channels", "Payment channels", "payments", "channel", "id", "Channel number"),
    Section("escrows", "Escrows", "payments", "escrow", "id", "Escrow number"),
    Section("data-sets", "Data sets", "consent", "data_set", "id", "Data set id"),
    Section("consents", "Consents", "consent", "consent", "id", "Consent number"),
    # Public fields only: the vehicle a battery sits in is left out (it can point at a person).
    Section("passports", "Battery passports", "batteries", "passport", "id", "Passport id", search=UUID4,
            fields=("passport", "id_dmc", "battery", "operator", "stage", "predecessor", "successor",
                    "recycling_batch", "report_count", "created_height", "updated_height", "documents",
                    "history"), listing="list", paged_by="after"),
    Section("programmes", "Reward programmes", "mobility", "programme", "id", "Programme number",
            listing="programmes"),
)


def available(module_names: Iterable[str]) -> tuple[Section, ...]:
    """The sections whose module this node runs, in registry order."""
    names = set(module_names)
    return tuple(section for section in SECTIONS if section.module in names)


def find(sections: Iterable[Section], slug: str) -> Section | None:
    """The section at /explorer/<slug>, if this node shows it."""
    return next((section for section in sections if section.slug == slug), None)
