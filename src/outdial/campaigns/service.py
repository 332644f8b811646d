"""Rules of outplans, campaigns and campaigncalls: ranges, references, status changes, deletes.

The dialing engine owns the other half of a campaign's life: it moves `stopping` to `stop` when
the last attempt ends, and `run` to `stop` when an `end_handle: stop` campaign has nothing left.
Whoever changes a campaign's status holds its row lock, so the two never race; the wait for that
lock is bounded (a 503 past it, see db.Limits).

One outdial, one running campaign: a campaign runs only on an outdial that names it and on
which no other campaign runs, and that link cannot move while it runs. Starting a campaign
locks its outdial, so two started at once on one outdial are taken one after the other.
"""

import datetime as dt
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from outdial.auth.service import Principal
from outdial.campaigns.actions import EMAIL_ACTION, check_action
from outdial.campaigns.repository import CampaignRepository
from outdial.campaigns.schemas import (
    Action,
    CampaignCreate,
    CampaignUpdate,
    DialInfo,
    OutplanCreate,
    ResourceInfo,
)
from outdial.channels.repository import ChannelRepository
from outdial.channels.schemas import CHANNEL_OF_DESTINATION
from outdial.channels.service import referenced_channel
from outdial.clock import Clock
from outdial.db.paging import Page, PageRequest
from outdial.errors import FailedPrecondition, InvalidArgument, NotFound
from outdial.events import catalogue
from outdial.events.outbox import emit
from outdial.models import Campaign, Campaigncall, Outdial, Outplan
from outdial.models.base import NIL_UUID
from outdial.models.outdials import DESTINATION_SLOTS
from outdial.outdials.destinations import validate_address
from outdial.outdials.repository import OutdialRepository
from outdial.strategy.windows import stored_window, window_problem
from outdial.strategy.dnc import referenced_lists
from outdial.strategy.retry import check_retry_rules

DIAL_TIMEOUT_MS = (1_000, 600_000)
TRY_INTERVAL_MS = (0, 30 * 24 * 3600 * 1000)
MAX_TRY_COUNT = (0, 100)
CONCURRENCY = (1, 1000)
DIAL_RATE = (1, 1000)  # new attempts per second
# Kept only for compatibility; any non-negative value a 32-bit column holds.
SERVICE_LEVEL = (0, 2**31 - 1)
CAMPAIGN_TYPES = ("call",)
END_HANDLES = ("stop", "continue")
REQUESTED_STATUSES = ("run", "stop")
PRIORITIES = ("due_first", "fresh_first")


def check_range(field: str, value: int, bounds: tuple[int, int], unit: str = "") -> int:
    low, high = bounds
    if not low <= value <= high:
        raise InvalidArgument(field, f"{value} is outside {low}-{high}{unit}")
    return value


def check_one_of(field: str, value: str, accepted: tuple[str, ...]) -> str:
    if value not in accepted:
        raise InvalidArgument(field, f"{value!r} is not accepted (one of: {', '.join(accepted)})")
    return value


def check_window(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A calling window as stored, or 400 naming the field at fault."""
    if problem := window_problem(value):
        raise InvalidArgument(*problem)
    return stored_window(value)


def check_actions(actions: list[Action]) -> list[dict[str, object]]:
    """The shape was checked on the way in; each action must be one this service runs."""
    for index, action in enumerate(actions):
        check_action(index, action.type, action.option)
    return [{"type": action.type, "option": action.option} for action in actions]


async def stop_campaign(repo: CampaignRepository, campaign: Campaign, now: dt.datetime) -> None:
    """`stop` at once when nothing is in flight; else `stopping`, which the engine moves on to
    `stop` when the last attempt ends. The caller holds the campaign's row lock."""
    in_flight = await repo.has_calls_in_flight(campaign.id)
    campaign.status = "stopping" if in_flight else "stop"
    campaign.tm_update = now
    await campaign_changed(repo.session, campaign, now)


async def campaign_changed(session: AsyncSession, campaign: Campaign, now: dt.datetime) -> None:
    """Every change of a campaign, by the API or the engine, is a campaign_updated event."""
    await emit(session, catalogue.CAMPAIGN_UPDATED, campaign.customer_id,
               catalogue.campaign(campaign), now=now)


def _campaign_deleted(campaign: Campaign) -> FailedPrecondition:
    return FailedPrecondition(f"campaign {campaign.id} is deleted", "CAMPAIGN_DELETED")


class OutplanService:
    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.repo = CampaignRepository(session)
        self.clock = clock

    async def create_outplan(self, principal: Principal, body: OutplanCreate) -> Outplan:
        outplan = Outplan(
            id=uuid.uuid4(), customer_id=principal.customer_id, name=body.name,
            detail=body.detail, tm_create=self.clock.now(),
            sip_channel_id=NIL_UUID, email_channel_id=NIL_UUID,
        )
        self._apply_dial_info(outplan, body)
        await self._apply_channels(principal, outplan, body)
        self.repo.add(outplan)
        await self.repo.flush()
        return outplan

    async def list_outplans(self, principal: Principal, page: PageRequest) -> Page[Outplan]:
        return await self.repo.list_outplans(principal.customer_id, page)

    async def get_outplan(
        self, principal: Principal, outplan_id: uuid.UUID, *, for_update: bool = False
    ) -> Outplan:
        """The outplan, deleted or not; another customer's is as missing as a made-up id."""
        outplan = await self.repo.get_outplan(
            principal.customer_id, outplan_id, for_update=for_update
        )
        if outplan is None:
            raise NotFound(f"outplan {outplan_id} not found", "OUTPLAN_NOT_FOUND")
        return outplan

    async def live_outplan(self, principal: Principal, outplan_id: uuid.UUID) -> Outplan:
        outplan = await self.get_outplan(principal, outplan_id)
        if outplan.tm_delete is not None:
            raise FailedPrecondition(f"outplan {outplan_id} is deleted", "OUTPLAN_DELETED")
        return outplan

    async def update_outplan(
        self, principal: Principal, outplan_id: uuid.UUID, name: str, detail: str
    ) -> Outplan:
        outplan = await self.live_outplan(principal, outplan_id)
        outplan.name, outplan.detail, outplan.tm_update = name, detail, self.clock.now()
        return outplan

    async def set_dial_info(
        self, principal: Principal, outplan_id: uuid.UUID, body: DialInfo
    ) -> Outplan:
        outplan = await self.live_outplan(principal, outplan_id)
        self._apply_dial_info(outplan, body)
        await self._apply_channels(principal, outplan, body)
        outplan.tm_update = self.clock.now()
        return outplan

    async def delete_outplan(self, principal: Principal, outplan_id: uuid.UUID) -> Outplan:
        # The lock makes a campaign being started on this outplan either finish first (and be
        # seen below) or wait and then find the outplan deleted.
        outplan = await self.get_outplan(principal, outplan_id, for_update=True)
        if outplan.tm_delete is not None:
            return outplan
        if await self.repo.outplan_in_use(outplan.id):
            raise FailedPrecondition(
                f"outplan {outplan_id} is used by a running campaign; stop the campaign first",
                "OUTPLAN_IN_USE",
            )
        outplan.tm_delete = outplan.tm_update = self.clock.now()
        return outplan

    async def _apply_channels(self, principal: Principal, outplan: Outplan, body: DialInfo) -> None:
        """The channels named (a field left out keeps its channel), each checked."""
        for field in ("sip_channel_id", "email_channel_id"):
            if (channel_id := getattr(body, field)) is not None:
                checked = await referenced_channel(self.repo.session, principal, field, channel_id)
                setattr(outplan, field, checked)

    @staticmethod
    def _apply_dial_info(outplan: Outplan, body: DialInfo) -> None:
        """Check every field of `body` before changing anything, then set them all."""
        source = validate_address(
            "source", None if body.source is None else body.source.model_dump()
        )
        dial_timeout = check_range("dial_timeout", body.dial_timeout, DIAL_TIMEOUT_MS, " ms")
        try_interval = check_range("try_interval", body.try_interval, TRY_INTERVAL_MS, " ms")
        max_try_counts = [
            check_range(f"max_try_count_{n}", count, MAX_TRY_COUNT)
            for n, count in enumerate(body.max_try_counts())
        ]
        retry_rules = check_retry_rules(body.retry_rules)
        outplan.source = source
        # Left out, the rules are kept: a client written for dial_info without them (a VoIPbin
        # script changing try_interval) must not take away a `finish` after `rejected`.
        if "retry_rules" in body.model_fields_set:
            outplan.retry_rules = retry_rules
        outplan.dial_timeout, outplan.try_interval = dial_timeout, try_interval
        for n in range(DESTINATION_SLOTS):
            setattr(outplan, f"max_try_count_{n}", max_try_counts[n])


class CampaignService:
    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.repo = CampaignRepository(session)
        self.outdials = OutdialRepository(session)
        self.channels = ChannelRepository(session)
        self.session = session
        self.clock = clock

    async def create_campaign(self, principal: Principal, body: CampaignCreate) -> Campaign:
        check_one_of("type", body.type, CAMPAIGN_TYPES)
        check_one_of("end_handle", body.end_handle, END_HANDLES)
        actions = check_actions(body.actions)
        check_range("concurrency", body.concurrency, CONCURRENCY)
        check_range("dial_rate", body.dial_rate, DIAL_RATE, " per second")
        check_range("service_level", body.service_level, SERVICE_LEVEL)
        calling_window = check_window(body.calling_window)
        check_one_of("priority", body.priority, PRIORITIES)
        dnclist_ids = await referenced_lists(self.session, principal.customer_id, body.dnclist_ids)
        campaign = Campaign(
            id=uuid.uuid4(), customer_id=principal.customer_id, type=body.type, name=body.name,
            detail=body.detail, status="stop", service_level=body.service_level,
            end_handle=body.end_handle, actions=actions, concurrency=body.concurrency,
            dial_rate=body.dial_rate, outplan_id=NIL_UUID, outdial_id=NIL_UUID,
            queue_id=NIL_UUID, next_campaign_id=NIL_UUID, tm_create=self.clock.now(),
            calling_window=calling_window,
            priority=body.priority, dnclist_ids=dnclist_ids,
        )
        await self._apply_resource_info(principal, campaign, body)
        self.repo.add(campaign)
        await self.repo.flush()
        return campaign

    async def list_campaigns(self, principal: Principal, page: PageRequest) -> Page[Campaign]:
        return await self.repo.list_campaigns(principal.customer_id, page)

    async def get_campaign(
        self, principal: Principal, campaign_id: uuid.UUID, *, for_update: bool = False
    ) -> Campaign:
        """The campaign, deleted or not; another customer's is as missing as a made-up id."""
        campaign = await self.repo.get_campaign(
            principal.customer_id, campaign_id, for_update=for_update
        )
        if campaign is None:
            raise NotFound(f"campaign {campaign_id} not found", "CAMPAIGN_NOT_FOUND")
        return campaign

    async def live_campaign(self, principal: Principal, campaign_id: uuid.UUID) -> Campaign:
        """A campaign about to change: locked, so that the engine's status changes wait for us."""
        campaign = await self.get_campaign(principal, campaign_id, for_update=True)
        if campaign.tm_delete is not None:
            raise _campaign_deleted(campaign)
        return campaign

    async def update_campaign(
        self, principal: Principal, campaign_id: uuid.UUID, body: CampaignUpdate
    ) -> Campaign:
        if body.type is not None:
            check_one_of("type", body.type, CAMPAIGN_TYPES)
        if body.end_handle is not None:
            check_one_of("end_handle", body.end_handle, END_HANDLES)
        if body.concurrency is not None:
            check_range("concurrency", body.concurrency, CONCURRENCY)
        if body.dial_rate is not None:
            check_range("dial_rate", body.dial_rate, DIAL_RATE, " per second")
        if body.service_level is not None:
            check_range("service_level", body.service_level, SERVICE_LEVEL)
        calling_window = check_window(body.calling_window)
        if body.priority is not None:
            check_one_of("priority", body.priority, PRIORITIES)
        campaign = await self.live_campaign(principal, campaign_id)
        if body.dnclist_ids is not None:
            campaign.dnclist_ids = await referenced_lists(
                self.session, principal.customer_id, body.dnclist_ids,
                kept=campaign.dnclist_ids or ())
        campaign.name, campaign.detail = body.name, body.detail
        if "calling_window" in body.model_fields_set:  # null: no window any more
            campaign.calling_window = calling_window
        for field in ("type", "end_handle", "service_level", "concurrency", "dial_rate",
                      "priority"):
            if (value := getattr(body, field)) is not None:
                setattr(campaign, field, value)
        campaign.tm_update = self.clock.now()
        await campaign_changed(self.session, campaign, campaign.tm_update)
        return campaign

    async def set_status(
        self, principal: Principal, campaign_id: uuid.UUID, status: str
    ) -> Campaign:
        check_one_of("status", status, REQUESTED_STATUSES)
        campaign = await self.live_campaign(principal, campaign_id)
        now = self.clock.now()
        if status == "run":
            await self._ready_to_run(principal, campaign)
            campaign.status, campaign.tm_update = "run", now
            await campaign_changed(self.session, campaign, now)
        elif campaign.status != "stop":
            await stop_campaign(self.repo, campaign, now)  # its event too
        else:
            campaign.tm_update = now
        return campaign

    async def set_service_level(
        self, principal: Principal, campaign_id: uuid.UUID, service_level: int
    ) -> Campaign:
        check_range("service_level", service_level, SERVICE_LEVEL)
        campaign = await self.live_campaign(principal, campaign_id)
        campaign.service_level, campaign.tm_update = service_level, self.clock.now()
        await campaign_changed(self.session, campaign, campaign.tm_update)
        return campaign

    async def set_actions(
        self, principal: Principal, campaign_id: uuid.UUID, actions: list[Action]
    ) -> Campaign:
        checked = check_actions(actions)
        campaign = await self.live_campaign(principal, campaign_id)
        campaign.actions, campaign.tm_update = checked, self.clock.now()
        await campaign_changed(self.session, campaign, campaign.tm_update)
        return campaign

    async def set_resource_info(
        self, principal: Principal, campaign_id: uuid.UUID, body: ResourceInfo
    ) -> Campaign:
        campaign = await self.live_campaign(principal, campaign_id)
        await self._apply_resource_info(principal, campaign, body)
        campaign.tm_update = self.clock.now()
        await campaign_changed(self.session, campaign, campaign.tm_update)
        return campaign

    async def delete_campaign(self, principal: Principal, campaign_id: uuid.UUID) -> Campaign:
        campaign = await self.get_campaign(principal, campaign_id, for_update=True)
        if campaign.tm_delete is not None:
            return campaign
        if campaign.status != "stop":
            raise FailedPrecondition(
                f"campaign {campaign_id} is {campaign.status}; stop it before deleting it",
                "CAMPAIGN_NOT_STOPPED",
            )
        now = self.clock.now()
        outdial = await self.outdials.get_outdial(
            principal.customer_id, campaign.outdial_id, for_update=True
        )
        if outdial is not None and outdial.campaign_id == campaign.id:
            outdial.campaign_id, outdial.tm_update = NIL_UUID, now
        campaign.tm_delete = campaign.tm_update = now
        await campaign_changed(self.session, campaign, now)
        return campaign

    async def list_campaigncalls(
        self, principal: Principal, campaign_id: uuid.UUID, page: PageRequest
    ) -> Page[Campaigncall]:
        await self.get_campaign(principal, campaign_id)
        return await self.repo.list_campaigncalls(principal.customer_id, page, campaign_id)

    # -- references --------------------------------------------------------------------------

    async def _apply_resource_info(
        self, principal: Principal, campaign: Campaign, body: ResourceInfo
    ) -> None:
        """Point the campaign at its outplan and outdial (both required and live) and move the
        outdial's link: an outdial serves one campaign at a time."""
        if body.outplan_id is None or body.outplan_id == NIL_UUID:
            raise InvalidArgument("outplan_id", "is required: the outplan the campaign follows")
        if body.outdial_id is None or body.outdial_id == NIL_UUID:
            raise InvalidArgument("outdial_id", "is required: the outdial the campaign dials")
        next_campaign_id = body.next_campaign_id or NIL_UUID
        if next_campaign_id != NIL_UUID:
            if next_campaign_id == campaign.id:
                raise InvalidArgument("next_campaign_id", "a campaign cannot follow itself")
            await self._referenced_campaign(principal, next_campaign_id)
        await self._referenced_outplan(principal, body.outplan_id)

        # Both outdials (the old and the new) are locked, in id order so that two campaigns
        # swapping outdials cannot deadlock.
        old_id, new_id = campaign.outdial_id, body.outdial_id
        locked: dict[uuid.UUID, Outdial | None] = {}
        for outdial_id in sorted({old_id, new_id} - {NIL_UUID}):
            locked[outdial_id] = await self.outdials.get_outdial(
                principal.customer_id, outdial_id, for_update=True
            )
        outdial = locked[new_id]
        if new_id != old_id and campaign.status != "stop":
            # Its attempts in flight dial the old outdial's targets under its try limits.
            raise FailedPrecondition(
                f"campaign {campaign.id} is {campaign.status}; stop it before moving it to "
                "another outdial", "CAMPAIGN_NOT_STOPPED",
            )
        if outdial is None:
            raise InvalidArgument("outdial_id", f"outdial {new_id} does not exist")
        if outdial.tm_delete is not None:
            raise InvalidArgument("outdial_id", f"outdial {new_id} is deleted")
        if holder_id := await self._other_holder(principal, outdial, campaign):
            raise InvalidArgument(
                "outdial_id", f"outdial {new_id} already serves campaign {holder_id}",
                "OUTDIAL_IN_USE",
            )

        now = self.clock.now()
        previous = locked.get(old_id)
        if previous is not None and previous.id != new_id and previous.campaign_id == campaign.id:
            previous.campaign_id, previous.tm_update = NIL_UUID, now
        if outdial.campaign_id != campaign.id:
            outdial.campaign_id, outdial.tm_update = campaign.id, now
        campaign.outplan_id, campaign.outdial_id = body.outplan_id, new_id
        campaign.queue_id = body.queue_id or NIL_UUID
        campaign.next_campaign_id = next_campaign_id

    async def _referenced_outplan(self, principal: Principal, outplan_id: uuid.UUID) -> Outplan:
        # Locked so that the outplan cannot be deleted while this campaign starts using it.
        outplan = await self.repo.get_outplan(principal.customer_id, outplan_id, for_update=True)
        if outplan is None:
            raise InvalidArgument("outplan_id", f"outplan {outplan_id} does not exist")
        if outplan.tm_delete is not None:
            raise InvalidArgument("outplan_id", f"outplan {outplan_id} is deleted")
        return outplan

    async def _referenced_campaign(self, principal: Principal, campaign_id: uuid.UUID) -> None:
        other = await self.repo.get_campaign(principal.customer_id, campaign_id)
        if other is None or other.tm_delete is not None:
            raise InvalidArgument("next_campaign_id", f"campaign {campaign_id} does not exist")

    async def _other_holder(
        self, principal: Principal, outdial: Outdial, campaign: Campaign
    ) -> uuid.UUID | None:
        """The live campaign other than `campaign` that the outdial serves, if any; a link to a
        deleted or missing campaign is stale and does not count."""
        holder_id = outdial.campaign_id
        if holder_id in (NIL_UUID, campaign.id):
            return None
        holder = await self.repo.get_campaign(principal.customer_id, holder_id)
        return holder_id if holder is not None and holder.tm_delete is None else None

    async def _ready_to_run(self, principal: Principal, campaign: Campaign) -> None:
        """A campaign runs only on a live outplan and a live outdial that it holds."""
        outplan = await self.repo.get_outplan(
            principal.customer_id, campaign.outplan_id, for_update=True
        )
        if outplan is None or outplan.tm_delete is not None:
            raise FailedPrecondition(
                f"campaign {campaign.id} cannot run: its outplan {campaign.outplan_id} is deleted",
                "OUTPLAN_DELETED",
            )
        outdial = await self.outdials.get_outdial(
            principal.customer_id, campaign.outdial_id, for_update=True
        )
        if outdial is None or outdial.tm_delete is not None:
            raise FailedPrecondition(
                f"campaign {campaign.id} cannot run: its outdial {campaign.outdial_id} is deleted",
                "OUTDIAL_DELETED",
            )
        if holder_id := await self._other_holder(principal, outdial, campaign):
            raise FailedPrecondition(
                f"campaign {campaign.id} cannot run: its outdial {outdial.id} now serves "
                f"campaign {holder_id}", "OUTDIAL_IN_USE",
            )
        # The outdial's lock, held since above, makes this check and the `run` one step.
        running = [c.id for c in await self.repo.active_campaigns_on_outdial(outdial.id)
                   if c.id != campaign.id]
        if running:
            raise FailedPrecondition(
                f"campaign {campaign.id} cannot run: campaign {running[0]} is running on its "
                f"outdial {outdial.id}", "OUTDIAL_IN_USE",
            )
        if outdial.campaign_id != campaign.id:
            # Linked again if someone pointed the outdial elsewhere (or nowhere) meanwhile.
            outdial.campaign_id, outdial.tm_update = campaign.id, self.clock.now()
        await self._channels_ready(principal, campaign, outplan, outdial)

    async def _channels_ready(
        self, principal: Principal, campaign: Campaign, outplan: Outplan, outdial: Outdial
    ) -> None:
        """An outplan that names channels must have one for every destination type the
        outdial holds in a slot it tries: no silent fallback to simulation."""
        slots = {"sip_channel_id": outplan.sip_channel_id,
                 "email_channel_id": outplan.email_channel_id}
        if all(channel_id == NIL_UUID for channel_id in slots.values()):
            return  # no channel at all: the server's simulated dialer (the quick start)
        tried = [n for n in range(DESTINATION_SLOTS) if outplan.max_try_count(n) > 0]
        held = await self.repo.destination_types(outdial.id, tried)
        for kind in sorted(held):
            slot = CHANNEL_OF_DESTINATION[kind]
            if slots[slot] == NIL_UUID:
                raise InvalidArgument(
                    slot, f"campaign {campaign.id} cannot run: outdial {outdial.id} holds {kind} "
                    f"destinations and outplan {outplan.id} has no channel for {kind} "
                    f"(set its {slot})", "CHANNEL_MISSING",
                )
            channel = await self.channels.get_channel(
                principal.customer_id, slots[slot], for_update=True
            )
            if channel is None or channel.tm_delete is not None:
                raise FailedPrecondition(
                    f"campaign {campaign.id} cannot run: channel {slots[slot]} of outplan "
                    f"{outplan.id} is deleted", "CHANNEL_DELETED",
                )
            if kind == "email" and channel.type == "smtp" and not any(
                a.get("type") == EMAIL_ACTION for a in campaign.actions or []
            ):
                raise InvalidArgument(
                    "actions", f"campaign {campaign.id} cannot run: outdial {outdial.id} holds "
                    "email destinations and the campaign has no email_send action (the "
                    "message to send)", "EMAIL_ACTION_MISSING",
                )


class CampaigncallService:
    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.repo = CampaignRepository(session)
        self.clock = clock

    async def list_campaigncalls(
        self, principal: Principal, page: PageRequest
    ) -> Page[Campaigncall]:
        return await self.repo.list_campaigncalls(principal.customer_id, page)

    async def get_campaigncall(
        self, principal: Principal, campaigncall_id: uuid.UUID, *, for_update: bool = False
    ) -> Campaigncall:
        call = await self.repo.get_campaigncall(
            principal.customer_id, campaigncall_id, for_update=for_update
        )
        if call is None:
            raise NotFound(f"campaigncall {campaigncall_id} not found", "CAMPAIGNCALL_NOT_FOUND")
        return call

    async def delete_campaigncall(
        self, principal: Principal, campaigncall_id: uuid.UUID
    ) -> Campaigncall:
        # Locked: the engine may be recording this attempt's outcome right now.
        call = await self.get_campaigncall(principal, campaigncall_id, for_update=True)
        if call.tm_delete is not None:
            return call
        if call.status != "done":
            raise FailedPrecondition(
                f"campaigncall {campaigncall_id} is {call.status}; it can be deleted once done",
                "CAMPAIGNCALL_IN_PROGRESS",
            )
        call.tm_delete = call.tm_update = self.clock.now()
        await emit(self.repo.session, catalogue.CAMPAIGNCALL_UPDATED, call.customer_id,
                   catalogue.campaigncall(call), now=call.tm_update)
        return call
