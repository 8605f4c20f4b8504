"""/mobility/enrollments_of: an account's enrollments (each period's paid rewards and trips), paged by
{'after'} (modules/paging.py)."""

from __future__ import annotations

from typing import Any

from ...core.encoding import decoder
from ...core.state import StateReader
from ...core.types import address_from_str
from ..paging import scan_owned
from .keys import ENROLLMENTS_PREFIX
from .messages import EnrollmentRecord
from .queries import render_enrollment

_ENROLLMENT = decoder(EnrollmentRecord)


def query_enrollments_of(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """The enrollments of {'account'} (a 'city…' account) in every programme and period."""
    account = address_from_str(args.get("account", ""), "account")
    return scan_owned(state, ENROLLMENTS_PREFIX, args, _ENROLLMENT.decode_lenient, lambda record: record.account == account,
                      render_enrollment)
