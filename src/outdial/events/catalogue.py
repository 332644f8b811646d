"""The event types and, for each, its payload: the resource exactly as the API returns it.

Payloads are built by the API's own response models, so an event's `data` is what a GET of the
resource would have answered at that moment, timestamps written in the process's
OUTDIAL_TIME_FORMAT (see outdial.timestamps: the API sets it per request, the engine and the
import runner for their whole run).
"""

import uuid
from typing import Any

from outdial.campaigns.schemas import CampaigncallOut, CampaignOut
from outdial.channels.schemas import ChannelCheckOut
from outdial.imports.schemas import ImportJobOut
from outdial.outdials.schemas import TargetOut
from outdial.webhooks.schemas import WebhookOut

CAMPAIGNCALL_CREATED = "campaigncall_created"
CAMPAIGNCALL_UPDATED = "campaigncall_updated"
OUTDIALTARGET_UPDATED = "outdialtarget_updated"
CAMPAIGN_UPDATED = "campaign_updated"
IMPORT_UPDATED = "import_updated"
CHANNEL_CHECK_DONE = "channel_check_done"
WEBHOOK_DISABLED = "webhook_disabled"

# Every type, with what it says; `type=` filters and webhook subscriptions are checked against
# these keys. Names follow VoIPbin's <resource>_<verb>.
EVENT_TYPES: dict[str, str] = {
    CAMPAIGNCALL_CREATED: "an attempt started (a campaigncall, status dialing)",
    CAMPAIGNCALL_UPDATED: "an attempt was answered (progressing) or ended (done, with its "
                          "outcome, SIP code and digits)",
    OUTDIALTARGET_UPDATED: "a target changed: its status or try counts (by the engine or the API)",
    CAMPAIGN_UPDATED: "a campaign changed, its status included (also when the engine stops it)",
    IMPORT_UPDATED: "an import job ended: done or failed, with its counts",
    CHANNEL_CHECK_DONE: "a channel check ended: whether the peer was reached",
    WEBHOOK_DISABLED: "a webhook was disabled after failed attempts in a row; detail says why",
}


def campaigncall(row: Any) -> dict[str, Any]:
    """A campaigncall (ORM object or Core row) as GET /campaigncalls/{id} returns it."""
    return CampaigncallOut.of(row).model_dump(mode="json")


def outdialtarget(row: Any) -> dict[str, Any]:
    """A target as GET /outdials/{id}/targets/{target_id} returns it."""
    return TargetOut.of(row).model_dump(mode="json")


def campaign(row: Any) -> dict[str, Any]:
    """A campaign as GET /campaigns/{id} returns it."""
    return CampaignOut.of(row).model_dump(mode="json")


def import_job(row: Any) -> dict[str, Any]:
    """An import job as GET /outdials/{id}/imports/{import_id} returns it."""
    return ImportJobOut.of(row).model_dump(mode="json")


def channel_check(channel_id: uuid.UUID, result: ChannelCheckOut) -> dict[str, Any]:
    """What POST /channels/{id}/check answered, with the channel it was about."""
    return {"channel_id": str(channel_id), **result.model_dump(mode="json")}


def webhook(row: Any) -> dict[str, Any]:
    """A webhook as GET /webhooks/{id} returns it (its secret never)."""
    return WebhookOut.of(row).model_dump(mode="json")
