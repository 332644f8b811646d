"""Do-not-call lists: what a destination's normalised value is, and which are listed now.

A value is normalised once, the same way for an entry and for a target's destination:
a phone number in E.164 (the destination rules of outdials/destinations.py read it, so
"(212) 555-0123" with default_region US and "+12125550123" are one value), a SIP URI with its
scheme (`sips:` read as `sip:`, a bare user@host given `sip:`) and an email address, both
lower-cased. The claim looks the normalised destinations of its batch up in the lists that
apply to the campaign: those it names in `dnclist_ids` and those of its customer marked
`applies_to_all`; an entry whose tm_expire has passed no longer counts.
"""

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.errors import InvalidArgument
from outdial.models import DncEntry, Dnclist
from outdial.outdials.destinations import sip_uri, validate_address

# The outcome recorded on the campaigncall of a slot passed over because it is on a list.
DNC_OUTCOME = "dnc"
CHUNK = 500  # values per lookup: under both databases' parameter caps


def normalised(address: dict[str, Any]) -> str:
    """The value a stored address (a destination) is listed under."""
    kind, target = address["type"], address["target"]
    if kind == "tel":
        return str(target)  # stored destinations are E.164 already
    if kind == "sip":
        uri = sip_uri(target).lower()
        return "sip:" + uri[5:] if uri.startswith("sips:") else uri
    return str(target).lower()


def entry_value(value: Any, default_region: str | None = None,
                field: str = "value") -> tuple[str, str]:
    """(type, normalised value) of an entry as written: a bare value ('+1 212 555 0123',
    a national number with default_region, 'sip:…', '…@…') or an address object; by the
    destination rules, so an entry is refused for what a destination would be."""
    if isinstance(value, str) and not value.strip():
        raise InvalidArgument(field, "must not be empty")
    address = validate_address(field, value, from_import=True, default_region=default_region)
    if address is None:
        raise InvalidArgument(field, "must be a phone number, SIP URI or email address")
    return address["type"], normalised(address)


async def referenced_lists(
    session: AsyncSession, customer_id: uuid.UUID, ids: Iterable[uuid.UUID],
    field: str = "dnclist_ids",
) -> list[str]:
    """A campaign's dnclist_ids, each a live list of the customer (another customer's is as
    missing as a made-up id), in stored form: distinct id texts, in the order given."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    found = set(await session.scalars(
        select(Dnclist.id).where(Dnclist.id.in_(wanted), Dnclist.customer_id == customer_id,
                                 Dnclist.tm_delete.is_(None))
    ))
    for index, list_id in enumerate(wanted):
        if list_id not in found:
            raise InvalidArgument(f"{field}.{index}", f"dnclist {list_id} does not exist")
    return [str(i) for i in wanted]


async def applicable_lists(
    session: AsyncSession, customer_id: uuid.UUID, named: Iterable[Any]
) -> list[uuid.UUID]:
    """The live lists a campaign of the customer honours: those it names, and those of the
    customer that apply to all."""
    ids = [uuid.UUID(str(i)) for i in named]
    wanted = Dnclist.applies_to_all.is_(True)
    if ids:
        wanted = or_(wanted, Dnclist.id.in_(ids))
    rows = await session.scalars(
        select(Dnclist.id).where(Dnclist.customer_id == customer_id, Dnclist.tm_delete.is_(None),
                                 wanted).order_by(Dnclist.id)
    )
    return list(rows)


async def listed(
    session: AsyncSession, list_ids: list[uuid.UUID], values: Iterable[str], now: dt.datetime
) -> dict[str, uuid.UUID]:
    """Which of `values` an unexpired entry of the lists holds, with one such list each: an
    indexed lookup (uq_dnc_entries_list_value) of just these values, however long the lists."""
    wanted = sorted(set(values))
    found: dict[str, uuid.UUID] = {}
    if not list_ids or not wanted:
        return found
    for start in range(0, len(wanted), CHUNK):
        rows = await session.execute(
            select(DncEntry.value, DncEntry.dnclist_id).where(
                DncEntry.dnclist_id.in_(list_ids),
                DncEntry.value.in_(wanted[start:start + CHUNK]),
                or_(DncEntry.tm_expire.is_(None), DncEntry.tm_expire > now),
            )
        )
        for value, list_id in rows:
            found.setdefault(value, list_id)
    return found
