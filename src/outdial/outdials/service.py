"""Rules of outdials and targets: tenancy, soft delete, destination validation."""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from outdial.auth.repository import CallerCheck
from outdial.auth.service import WRITERS, Principal
from outdial.campaigns.repository import CampaignRepository
from outdial.campaigns.service import stop_campaign
from outdial.clock import Clock
from outdial.db.driver import DriverConnection
from outdial.db.paging import Page, PageRequest
from outdial.events import catalogue
from outdial.events.outbox import emit
from outdial.errors import FailedPrecondition, InvalidArgument, NotFound
from outdial.models import Outdial, OutdialTarget
from outdial.models.base import NIL_UUID
from outdial.outdials.destinations import address_forms, validate_destination
from outdial.outdials.repository import (
    TARGET_DEFAULTS,
    NewTarget,
    OutdialRepository,
    insert_target_if,
    outdial_row,
)
from outdial.outdials.schemas import OutdialCreate, TargetWrite
from outdial.strategy import reasons
from outdial.strategy.windows import timezone_problem, zone_key

# The reason of every idle target of an outdial whose campaign does not run (strategy.reasons).
NOT_RUNNING = "campaign_not_running"


def validate_timezone(value: str | None) -> str | None:
    if value is not None and (problem := timezone_problem(value)):
        raise InvalidArgument("timezone", problem)
    return value or None


def validate_destinations(values: list[Any]) -> list[dict[str, str] | None]:
    """Check all five slots; a target needs at least one destination."""
    checked = [validate_destination(n, value) for n, value in enumerate(values)]
    if all(d is None for d in checked):
        raise InvalidArgument("destination_0", "a target needs at least one destination")
    return checked


def target_values(
    clock: Clock, customer_id: uuid.UUID, outdial_id: uuid.UUID, body: TargetWrite
) -> dict[str, Any]:
    """Every column of a new target, the model's defaults included; the body's destinations
    and time zone checked."""
    destinations = validate_destinations(body.destinations())
    timezone = validate_timezone(body.timezone)
    now = clock.now()
    return {
        **TARGET_DEFAULTS,
        "id": uuid.uuid4(), "customer_id": customer_id, "outdial_id": outdial_id,
        "name": body.name, "detail": body.detail, "data": body.data, "status": "idle",
        "timezone": timezone, "zone_key": zone_key(timezone, destinations),
        "address_forms": address_forms(destinations), "tm_create": now, "tm_update": now,
        **{f"destination_{n}": d for n, d in enumerate(destinations)},
    }


# The hot routes' calls (api/routes/outdials.py): one statement each on a driver connection,
# which also reads the caller's live permission (CallerCheck).

async def get_outdial_row(
    connection: DriverConnection, customer_id: uuid.UUID, outdial_id: uuid.UUID,
    check: CallerCheck,
) -> Any:
    """get_outdial as one statement that also reads the caller's permission: the row has the
    outdial's columns and `permission`."""
    row = await outdial_row(connection, customer_id, outdial_id, check)
    if row is None:
        raise NotFound(f"outdial {outdial_id} not found", "OUTDIAL_NOT_FOUND")
    return row


async def add_target(
    connection: DriverConnection, values: dict[str, Any], check: CallerCheck
) -> tuple[NewTarget, reasons.Waiting | None] | None:
    """create_target in one statement (its own transaction), for a caller not checked yet: the
    target of these values (target_values) is added only if the outdial is the customer's and
    live and the caller may write; None if not (create_target then tells why). With the
    target, its waiting when the statement's facts tell it (fresh_target_waiting)."""
    campaign_running = await insert_target_if(connection, values, check, WRITERS)
    if campaign_running is None:
        return None
    return NewTarget(values), fresh_target_waiting(campaign_running)


def fresh_target_waiting(campaign_running: bool) -> reasons.Waiting | None:
    """The waiting of a new (idle, never tried) target without asking the rules' SQL, when its
    outdial's campaign does not run: the first rule (reasons.RULES) holds every idle target
    then, with no time and no detail. None when the campaign runs: then the other rules (the
    lists, the limits, the windows) decide, and OutdialService.waiting_of asks them."""
    first = reasons.RULES[0]
    if campaign_running or first.reason != NOT_RUNNING:
        return None
    return reasons.Waiting(NOT_RUNNING, None, None)


class OutdialService:
    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.repo = OutdialRepository(session)
        self.campaigns = CampaignRepository(session)
        self.session = session
        self.clock = clock

    # -- outdials ----------------------------------------------------------------------------

    async def create_outdial(self, principal: Principal, body: OutdialCreate) -> Outdial:
        campaign_id = body.campaign_id or NIL_UUID
        await self._check_campaign(principal, campaign_id)
        outdial = Outdial(
            id=uuid.uuid4(), customer_id=principal.customer_id, campaign_id=campaign_id,
            name=body.name, detail=body.detail, data=body.data, tm_create=self.clock.now(),
        )
        self.repo.add(outdial)
        await self.repo.flush()
        return outdial

    async def list_outdials(self, principal: Principal, page: PageRequest) -> Page[Outdial]:
        return await self.repo.list_outdials(principal.customer_id, page)

    async def get_outdial(self, principal: Principal, outdial_id: uuid.UUID) -> Outdial:
        """The outdial, deleted or not; another customer's is as missing as a made-up id."""
        outdial = await self.repo.get_outdial(principal.customer_id, outdial_id)
        if outdial is None:
            raise NotFound(f"outdial {outdial_id} not found", "OUTDIAL_NOT_FOUND")
        return outdial

    async def live_outdial(self, principal: Principal, outdial_id: uuid.UUID) -> Outdial:
        outdial = await self.get_outdial(principal, outdial_id)
        if outdial.tm_delete is not None:
            raise FailedPrecondition(f"outdial {outdial_id} is deleted", "OUTDIAL_DELETED")
        return outdial

    async def update_outdial(
        self, principal: Principal, outdial_id: uuid.UUID, name: str, detail: str
    ) -> Outdial:
        outdial = await self.live_outdial(principal, outdial_id)
        outdial.name, outdial.detail, outdial.tm_update = name, detail, self.clock.now()
        return outdial

    async def set_campaign(
        self, principal: Principal, outdial_id: uuid.UUID, campaign_id: uuid.UUID
    ) -> Outdial:
        # Locked: starting a campaign locks its outdial too, so the check below cannot miss one.
        outdial = await self._locked_outdial(principal, outdial_id)
        if outdial.tm_delete is not None:
            raise FailedPrecondition(f"outdial {outdial_id} is deleted", "OUTDIAL_DELETED")
        await self._check_campaign(principal, campaign_id)
        running = [c.id for c in await self.campaigns.active_campaigns_on_outdial(outdial.id)
                   if c.id != campaign_id]
        if running:
            # Another campaign would dial the same targets, past the running one's try limits.
            raise FailedPrecondition(
                f"outdial {outdial_id} serves campaign {running[0]}, which is running; "
                "stop it first", "OUTDIAL_CAMPAIGN_RUNNING",
            )
        outdial.campaign_id, outdial.tm_update = campaign_id, self.clock.now()
        return outdial

    async def set_data(self, principal: Principal, outdial_id: uuid.UUID, data: str) -> Outdial:
        outdial = await self.live_outdial(principal, outdial_id)
        outdial.data, outdial.tm_update = data, self.clock.now()
        return outdial

    async def delete_outdial(self, principal: Principal, outdial_id: uuid.UUID) -> Outdial:
        """Soft delete; a campaign running on the outdial stops (`stopping` until its attempts
        in flight end). Locked first, so no campaign starts on it meanwhile."""
        outdial = await self._locked_outdial(principal, outdial_id)
        if outdial.tm_delete is None:
            now = self.clock.now()
            for campaign in await self.campaigns.active_campaigns_on_outdial(
                outdial.id, for_update=True
            ):
                await stop_campaign(self.campaigns, campaign, now)
            outdial.tm_delete = outdial.tm_update = now
        return outdial

    async def _locked_outdial(self, principal: Principal, outdial_id: uuid.UUID) -> Outdial:
        outdial = await self.repo.get_outdial(principal.customer_id, outdial_id, for_update=True)
        if outdial is None:
            raise NotFound(f"outdial {outdial_id} not found", "OUTDIAL_NOT_FOUND")
        return outdial

    async def _check_campaign(self, principal: Principal, campaign_id: uuid.UUID) -> None:
        if campaign_id == NIL_UUID:
            return
        campaign = await self.repo.get_campaign(principal.customer_id, campaign_id)
        if campaign is None or campaign.tm_delete is not None:
            raise InvalidArgument("campaign_id", f"campaign {campaign_id} does not exist")

    # -- targets -----------------------------------------------------------------------------

    async def create_target(
        self, principal: Principal, outdial_id: uuid.UUID, values: dict[str, Any]
    ) -> OutdialTarget:
        """Add the target of these values (target_values) to a live outdial of the caller's."""
        await self.live_outdial(principal, outdial_id)
        target = OutdialTarget(**values)
        self.repo.add(target)
        await self.repo.flush()
        return target

    async def list_targets(
        self, principal: Principal, outdial_id: uuid.UUID, page: PageRequest, status: str | None
    ) -> Page[OutdialTarget]:
        await self.get_outdial(principal, outdial_id)
        return await self.repo.list_targets(outdial_id, page, status)

    async def get_target(
        self, principal: Principal, outdial_id: uuid.UUID, target_id: uuid.UUID,
        *, for_update: bool = False,
    ) -> OutdialTarget:
        await self.get_outdial(principal, outdial_id)
        target = await self.repo.get_target(outdial_id, target_id, for_update=for_update)
        if target is None:
            raise NotFound(
                f"target {target_id} not found in outdial {outdial_id}", "OUTDIAL_TARGET_NOT_FOUND"
            )
        return target

    async def update_target(
        self, principal: Principal, outdial_id: uuid.UUID, target_id: uuid.UUID, body: TargetWrite
    ) -> OutdialTarget:
        destinations = validate_destinations(body.destinations())
        timezone = validate_timezone(body.timezone)
        await self.live_outdial(principal, outdial_id)
        target = await self.get_target(principal, outdial_id, target_id, for_update=True)
        if target.tm_delete is not None:
            raise FailedPrecondition(f"target {target_id} is deleted", "OUTDIAL_TARGET_DELETED")
        if target.status == "progressing":
            raise FailedPrecondition(
                f"target {target_id} is being dialed; change it when the attempt ends",
                "OUTDIAL_TARGET_PROGRESSING",
            )
        target.name, target.detail, target.data = body.name, body.detail, body.data
        for n, destination in enumerate(destinations):
            setattr(target, f"destination_{n}", destination)
        target.timezone, target.zone_key = timezone, zone_key(timezone, destinations)
        target.address_forms = address_forms(destinations)
        target.tm_update = self.clock.now()
        await self._target_changed(target)
        return target

    async def delete_target(
        self, principal: Principal, outdial_id: uuid.UUID, target_id: uuid.UUID
    ) -> OutdialTarget:
        target = await self.get_target(principal, outdial_id, target_id, for_update=True)
        if target.tm_delete is None:
            target.tm_delete = target.tm_update = self.clock.now()
            await self._target_changed(target)
        return target

    async def waiting_of(
        self, outdial_id: uuid.UUID, targets: Sequence[OutdialTarget | NewTarget]
    ) -> dict[uuid.UUID, reasons.Waiting]:
        """Why each of these targets waits, now (strategy.reasons)."""
        outdial = await self.session.get(Outdial, outdial_id)
        if outdial is None or not targets:
            return {}
        await self.session.flush()
        situation = await reasons.situation(self.session, outdial, self.clock.now())
        return await reasons.waiting_of(self.session, situation, [t.id for t in targets])

    async def _target_changed(self, target: OutdialTarget) -> None:
        # With its waiting reason as of now, as the API answers the change.
        waiting = await self.waiting_of(target.outdial_id, [target])
        await emit(self.session, catalogue.OUTDIALTARGET_UPDATED, target.customer_id,
                   catalogue.outdialtarget(target, waiting.get(target.id)), now=target.tm_update)
