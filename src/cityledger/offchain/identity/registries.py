"""A published credential type and its revocation registries, and how the sealed state stores them.

The office's issuing logic is in issuer.py; this file holds the records it keeps per type: the
credential definition with its private parts, and each registry with the indexes given out (drawn at
random, never reused), in the order they were anchored.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import anoncreds

from .types import CredentialType


@dataclass
class Registry:
    """One revocation registry of a credential type: its keys, status list and the indexes given out."""

    rev_reg_id: str
    tag: str
    rev_reg_def: Any
    rev_reg_private: Any
    status_list: Any
    size: int
    used: bytearray  # bit i set: index i was given to a credential (never given again)
    free: list[int] = field(default_factory=list, repr=False)  # the others, derived from `used`

    def __post_init__(self) -> None:
        if not self.free:
            # AnonCreds index 0 is unusable: a registry of size N holds N - 1 credentials.
            self.free = [i for i in range(1, self.size) if not self.used[i // 8] >> (i % 8) & 1]

    @property
    def issued(self) -> int:
        """How many indexes were given out."""
        return self.size - 1 - len(self.free)

    def give_back(self, index: int) -> None:
        """Return an index taken for a credential that was not issued after all (nobody holds it)."""
        self.used[index // 8] &= ~(1 << (index % 8)) & 0xFF
        self.free.append(index)

    def claim(self, index: int) -> None:
        """Mark an index given out (a redemption taken back from the journal)."""
        if 1 <= index < self.size and not self.used[index // 8] >> (index % 8) & 1:
            self.used[index // 8] |= 1 << (index % 8)
            self.free.remove(index)

    def take_index(self) -> int:
        """A free index chosen at random (CSPRNG), so an index says nothing about when it was issued."""
        position = secrets.randbelow(len(self.free))
        self.free[position], self.free[-1] = self.free[-1], self.free[position]
        index = self.free.pop()
        self.used[index // 8] |= 1 << (index % 8)
        return index


@dataclass
class Published:
    """One credential type as published by this issuer, with its private parts."""

    ctype: CredentialType
    schema_id: str
    cred_def_id: str
    cred_def: Any
    cred_def_private: Any
    key_proof: Any
    tag: str = "1"
    registries: list[Registry] = field(default_factory=list)  # in the order they were anchored

    @property
    def current(self) -> Registry | None:
        """The registry new credentials go into: the first with a free index (else the last)."""
        return next((r for r in self.registries if r.free), self.registries[-1] if self.registries else None)

    @property
    def spare(self) -> Registry | None:
        """A registry anchored after the current one, waiting for it to fill."""
        current = self.current
        later = self.registries[self.registries.index(current) + 1:] if current else []
        return next((r for r in later if r.free), None)

    def registry(self, rev_reg_id: str) -> Registry:
        """The registry with this id; raise KeyError."""
        for registry in self.registries:
            if registry.rev_reg_id == rev_reg_id:
                return registry
        raise KeyError(rev_reg_id)

    # The current registry's parts, as callers that know of one registry per type read them.
    rev_reg_id = property(lambda self: self.current.rev_reg_id if self.current else None)
    rev_reg_def = property(lambda self: self.current.rev_reg_def if self.current else None)
    rev_reg_private = property(lambda self: self.current.rev_reg_private if self.current else None)
    status_list = property(lambda self: self.current.status_list if self.current else None)


_OBJECTS = {"cred_def": anoncreds.CredentialDefinition, "cred_def_private": anoncreds.CredentialDefinitionPrivate,
            "key_proof": anoncreds.KeyCorrectnessProof}
_REGISTRY_OBJECTS = {"rev_reg_def": anoncreds.RevocationRegistryDefinition,
                     "rev_reg_private": anoncreds.RevocationRegistryDefinitionPrivate,
                     "status_list": anoncreds.RevocationStatusList}


def compute_ids(published: Published) -> dict[str, str]:
    """The ledger ids of a published type (its current registry's)."""
    return {"schema_id": published.schema_id, "cred_def_id": published.cred_def_id,
            "rev_reg_id": published.rev_reg_id or ""}


def export_published(published: Published) -> dict[str, Any]:
    """A published type as the sealed state stores it (JSON-ready)."""
    out: dict[str, Any] = {"ctype": dataclasses.asdict(published.ctype), "schema_id": published.schema_id,
                           "cred_def_id": published.cred_def_id, "tag": published.tag,
                           "registries": [export_registry(r) for r in published.registries]}
    for name in _OBJECTS:
        out[name] = getattr(published, name).to_dict()
    return out


def export_registry(registry: Registry) -> dict[str, Any]:
    """One registry as the sealed state stores it."""
    out: dict[str, Any] = {"rev_reg_id": registry.rev_reg_id, "tag": registry.tag, "size": registry.size,
                           "used": registry.used.hex()}
    for name in _REGISTRY_OBJECTS:
        out[name] = getattr(registry, name).to_dict()
    return out


def import_published(item: dict[str, Any]) -> Published:
    """A published type from the sealed state (also the one-registry files of earlier versions)."""
    ctype = CredentialType(**dict(item["ctype"], attributes=tuple(item["ctype"]["attributes"])))
    objects = {name: kind.load(json.dumps(item[name])) for name, kind in _OBJECTS.items()}
    if "registries" in item:
        registries = [import_registry(r) for r in item["registries"]]
    elif item.get("rev_reg_id"):  # files of earlier versions: one registry, indexes 1 to next_index - 1 given out
        size = ctype.max_cred_num
        used = bytearray((size + 7) // 8)
        for index in range(1, int(item["next_index"])):
            used[index // 8] |= 1 << (index % 8)
        registries = [import_registry(dict(item, tag=item["rev_reg_id"].rsplit("/", 1)[1], size=size,
                                            used=used.hex()))]
    else:
        registries = []
    return Published(ctype, item["schema_id"], item["cred_def_id"], tag=item.get("tag", "1"),
                     registries=registries, **objects)


def import_registry(item: dict[str, Any]) -> Registry:
    """One registry from the sealed state."""
    objects = {name: kind.load(json.dumps(item[name])) for name, kind in _REGISTRY_OBJECTS.items()}
    return Registry(item["rev_reg_id"], item["tag"], size=int(item["size"]), used=bytearray.fromhex(item["used"]),
                    **objects)
