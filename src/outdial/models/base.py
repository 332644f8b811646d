"""Declarative base shared by every table, with stable constraint names for migrations."""

import datetime as dt
import uuid

from sqlalchemy import JSON, DateTime, MetaData, Uuid
from sqlalchemy.orm import DeclarativeBase

NIL_UUID = uuid.UUID(int=0)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        uuid.UUID: Uuid(),
        dt.datetime: DateTime(),
        # A destination that is absent must be SQL NULL, so that "present" is a plain IS NOT NULL.
        dict: JSON(none_as_null=True),
        list: JSON(none_as_null=True),
    }
