"""ORM tables, one module per aggregate."""

from outdial.models.auth import AccessKey, Agent, Customer, ServerSecret
from outdial.models.base import Base
from outdial.models.campaigns import Campaign, Campaigncall, Outplan
from outdial.models.channels import Channel
from outdial.models.dnc import DncEntry, Dnclist
from outdial.models.events import Event
from outdial.models.imports import ImportJob, ImportRowError, ImportRowTarget
from outdial.models.outdials import Outdial, OutdialTarget
from outdial.models.strategy import Contact
from outdial.models.webhooks import Webhook, WebhookDelivery

__all__ = [
    "AccessKey", "Agent", "Base", "Campaign", "Campaigncall", "Channel", "Contact", "Customer",
    "DncEntry", "Dnclist", "Event", "ImportJob",
    "ImportRowError", "ImportRowTarget", "Outdial", "OutdialTarget", "Outplan", "ServerSecret",
    "Webhook", "WebhookDelivery",
]
