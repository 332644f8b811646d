"""Rules of webhooks: checked URLs and event types, write-only secrets, tenancy, the delivery
log, manual retries and test pings."""

import asyncio
import json
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.auth.service import Principal
from outdial.channels.secrets import SecretBox, SecretUnreadable
from outdial.clock import Clock
from outdial.db.paging import Page, PageRequest, fetch_page
from outdial.errors import FailedPrecondition, InvalidArgument, NotFound
from outdial.events.catalogue import EVENT_TYPES
from outdial.events.catalogue import webhook as webhook_payload
from outdial.models import Webhook, WebhookDelivery
from outdial.netguard import AddressRefused, Unresolved, checked_address
from outdial.settings import Settings
from outdial.timestamps import format_timestamp
from outdial.urls import ascii_host, parse_http_url
from outdial.webhooks import repository as repo
from outdial.webhooks.schemas import WEBHOOK_STATUSES, WebhookCreate, WebhookUpdate
from outdial.webhooks.sending import Message, Sender
from outdial.webhooks.signing import Signer, generate_secret, secret_problem, signed_headers

RESOLVE_TIMEOUT_S = 5.0  # looking the URL's host up when a webhook is created or changed


async def url_problem(url: str, allow_private: bool) -> str | None:
    """Why `url` cannot receive webhooks, or None: http(s), a host, no credentials, and (unless
    private networks are allowed) a host that resolves only to public addresses. A name that
    does not resolve now is taken: the guard checks again at every delivery."""
    try:
        parsed = parse_http_url(url)
    except ValueError as error:
        return f"{url!r} is not a URL ({error})"
    if parsed.scheme not in ("http", "https"):
        return f"must be an http or https URL, not {parsed.scheme or 'a relative'!r} one"
    if not parsed.host:
        return "names no host"
    if parsed.userinfo:
        return "must not hold a user name or password (sign with the secret instead)"
    if parsed.fragment:
        return "must not hold a #fragment (it is never sent)"
    if allow_private:
        return None
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            # The name as deliveries look it up (IDNA 2008), not as Python's codec would.
            await checked_address(ascii_host(parsed), port, allow_private)
    except Unresolved:
        return None
    except AddressRefused as error:
        return str(error)
    except TimeoutError:
        return None  # like a name that does not resolve
    return None


def _event_types(values: list[str]) -> list[str]:
    seen: list[str] = []
    for index, value in enumerate(values):
        if value not in EVENT_TYPES:
            raise InvalidArgument(
                f"event_types.{index}",
                f"{value!r} is not an event type (one of: {', '.join(EVENT_TYPES)})",
            )
        if value not in seen:
            seen.append(value)
    return seen


class WebhookService:
    def __init__(
        self, session: AsyncSession, clock: Clock, secrets: SecretBox, settings: Settings
    ) -> None:
        self.session = session
        self.clock = clock
        self.secrets = secrets
        self.settings = settings

    async def _checked(self, url: str, event_types: list[str], secret: str | None) -> list[str]:
        if not self.settings.webhooks_allow_private_networks:
            # The host is looked up (up to RESOLVE_TIMEOUT_S): no transaction is held across it.
            # Only the caller's credential was read so far; on SQLite that transaction holds the
            # one writer's turn, which every other write, the engine's included, would wait for.
            await self.session.commit()
        if problem := await url_problem(url, self.settings.webhooks_allow_private_networks):
            raise InvalidArgument("url", problem)
        if secret is not None and (problem := secret_problem(secret)):
            raise InvalidArgument("secret", problem)
        return _event_types(event_types)

    async def create_webhook(self, principal: Principal, body: WebhookCreate) -> tuple[Webhook, str]:
        """The new webhook and its secret in clear (shown once)."""
        event_types = await self._checked(body.url, body.event_types, body.secret)
        secret = body.secret or generate_secret()
        webhook = Webhook(
            id=uuid.uuid4(), customer_id=principal.customer_id, url=body.url,
            event_types=event_types, secret_encrypted=self.secrets.encrypt(secret),
            status="enabled", detail="", failures=0, tm_create=self.clock.now(),
            # From the newest event on: a new webhook is not sent the past.
            event_cursor=await repo.latest_event_id(self.session, principal.customer_id),
        )
        self.session.add(webhook)
        await self.session.flush()
        return webhook, secret

    async def list_webhooks(self, principal: Principal, page: PageRequest) -> Page[Webhook]:
        query = select(Webhook).where(
            Webhook.customer_id == principal.customer_id, Webhook.tm_delete.is_(None)
        )
        return await fetch_page(self.session, query, Webhook, page)

    async def get_webhook(
        self, principal: Principal, webhook_id: uuid.UUID, *, for_update: bool = False
    ) -> Webhook:
        """The webhook, deleted or not; another customer's is as missing as a made-up id."""
        query = select(Webhook).where(
            Webhook.id == webhook_id, Webhook.customer_id == principal.customer_id
        )
        if for_update:
            query = query.with_for_update().execution_options(populate_existing=True)
        webhook = await self.session.scalar(query)
        if webhook is None:
            raise NotFound(f"webhook {webhook_id} not found", "WEBHOOK_NOT_FOUND")
        return webhook

    async def live_webhook(self, principal: Principal, webhook_id: uuid.UUID) -> Webhook:
        webhook = await self.get_webhook(principal, webhook_id, for_update=True)
        if webhook.tm_delete is not None:
            raise FailedPrecondition(f"webhook {webhook_id} is deleted", "WEBHOOK_DELETED")
        return webhook

    async def update_webhook(
        self, principal: Principal, webhook_id: uuid.UUID, body: WebhookUpdate
    ) -> Webhook:
        if body.status is not None and body.status not in WEBHOOK_STATUSES:
            raise InvalidArgument(
                "status", f"{body.status!r} is not a webhook status (enabled or disabled)")
        event_types = await self._checked(body.url, body.event_types, body.secret)
        webhook = await self.live_webhook(principal, webhook_id)
        now = self.clock.now()
        if body.status == "enabled" and webhook.status != "enabled":
            # Enabled again: from the newest event on, with a clean slate of failures.
            webhook.event_cursor = await repo.latest_event_id(self.session, webhook.customer_id)
            webhook.failures, webhook.detail = 0, ""
        elif body.status == "disabled" and webhook.status != "disabled":
            webhook.detail = "disabled by an update"
        webhook.status = body.status or webhook.status
        webhook.url, webhook.event_types = body.url, event_types
        if body.secret is not None:
            webhook.secret_encrypted = self.secrets.encrypt(body.secret)
        webhook.tm_update = now
        return webhook

    async def delete_webhook(self, principal: Principal, webhook_id: uuid.UUID) -> Webhook:
        """Deleted: nothing more is sent; its deliveries go with retention."""
        webhook = await self.get_webhook(principal, webhook_id, for_update=True)
        if webhook.tm_delete is None:
            webhook.tm_delete = webhook.tm_update = self.clock.now()
        return webhook

    async def list_deliveries(
        self, principal: Principal, webhook_id: uuid.UUID, page: PageRequest
    ) -> Page[WebhookDelivery]:
        await self.get_webhook(principal, webhook_id)
        query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
        return await fetch_page(self.session, query, WebhookDelivery, page)

    async def retry_delivery(
        self, principal: Principal, webhook_id: uuid.UUID, delivery_id: uuid.UUID
    ) -> WebhookDelivery:
        """Send the delivery again now (its retries start over), in its event's place."""
        webhook = await self.live_webhook(principal, webhook_id)
        delivery = await self.session.scalar(
            select(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook.id)
            .with_for_update().execution_options(populate_existing=True)
        )
        if delivery is None:
            raise NotFound(f"delivery {delivery_id} not found", "DELIVERY_NOT_FOUND")
        if delivery.event_id is None:
            raise FailedPrecondition(
                "a test ping is not sent again; send another with POST …/test", "DELIVERY_IS_TEST")
        if webhook.status != "enabled":
            raise FailedPrecondition(
                f"webhook {webhook_id} is disabled; enable it first", "WEBHOOK_DISABLED")
        now = self.clock.now()
        if (delivery.status == "pending" and delivery.owner is not None
                and delivery.tm_lease_expire is not None and delivery.tm_lease_expire >= now):
            raise FailedPrecondition(
                f"delivery {delivery_id} is being sent now", "DELIVERY_IN_FLIGHT")
        delivery.status = "pending"
        delivery.next_attempt_at = delivery.tm_queued = now
        delivery.owner, delivery.tm_lease_expire = None, None
        delivery.tm_update = now
        return delivery

    async def test_webhook(self, principal: Principal, webhook_id: uuid.UUID) -> WebhookDelivery:
        """Send a signed ping now and log it as a delivery of type webhook_test. The caller's
        transaction is ended before the request: no row is held while the receiver is awaited."""
        webhook = await self.live_webhook(principal, webhook_id)
        now = self.clock.now()
        delivery = WebhookDelivery(
            id=uuid.uuid4(), customer_id=webhook.customer_id, webhook_id=webhook.id,
            event_id=None, event_type=repo.TEST_EVENT, status="failed", attempts=1,
            next_attempt_at=now, tm_queued=now, owner=None, tm_lease_expire=None,
            response_code=0, latency_ms=0, error="", tm_create=now,
        )
        body = json.dumps({
            "id": None, "type": repo.TEST_EVENT, "customer_id": str(webhook.customer_id),
            "tm_create": format_timestamp(now), "data": webhook_payload(webhook),
        }, separators=(",", ":"), ensure_ascii=False)
        url, encrypted = webhook.url, webhook.secret_encrypted
        await self.session.rollback()
        try:
            secret = self.secrets.decrypt(encrypted)
        except SecretUnreadable as error:
            delivery.error = str(error).replace("password", "webhook secret")
        else:
            headers = signed_headers(Signer(secret), f"test_{delivery.id}", now, body)
            sender = Sender(self.clock, self.settings.webhooks_timeout_seconds,
                            self.settings.webhooks_allow_private_networks)
            try:
                [sent] = await sender.send(url, [Message(body.encode(), headers)])
            finally:
                await sender.aclose()
            delivery.status = "delivered" if sent.ok else "failed"
            delivery.response_code, delivery.latency_ms = sent.status_code, sent.latency_ms
            delivery.error = sent.error
        delivery.tm_update = self.clock.now()
        self.session.add(delivery)
        await self.session.flush()
        return delivery
