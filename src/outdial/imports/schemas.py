"""Response shapes of import jobs."""

import uuid
from typing import Literal

from pydantic import BaseModel, Field

from outdial.models import ImportJob
from outdial.models.base import NIL_UUID
from outdial.timestamps import format_timestamp


class RowErrorOut(BaseModel):
    """A rejected row."""

    row: int = Field(description="the row's number, from 1 in file order (a CSV header is not a row)")
    field: str = Field(description="the field at fault, e.g. destination_0.target")
    message: str = Field(description="why the row was rejected")


class ImportJobOut(BaseModel):
    """An import job and its counts."""

    id: uuid.UUID = Field(description="the job's id")
    outdial_id: uuid.UUID = Field(description="the outdial the rows go into; the nil UUID for a "
                                              "do-not-call list's import")
    dnclist_id: uuid.UUID = Field(description="the do-not-call list the rows go into; the nil "
                                              "UUID for an outdial's import")
    status: Literal["running", "done", "failed"] = Field(
        description="running; done (its rows are in); failed (none is)")
    rows_total: int = Field(description="rows read so far")
    rows_imported: int = Field(description="rows that became targets")
    rows_rejected: int = Field(description="rows refused as invalid")
    rows_duplicate: int = Field(description="rows skipped by dedupe")
    errors: list[RowErrorOut] = Field(description="the first 100 rejected rows; all in GET …/errors")
    tm_create: str = Field(description="when the job started, UTC")
    tm_end: str | None = Field(description="when it ended, UTC; `9999-01-01 00:00:00.000000` while running")

    @classmethod
    def of(cls, job: ImportJob) -> "ImportJobOut":
        return cls(
            id=job.id, outdial_id=job.outdial_id or NIL_UUID,
            dnclist_id=job.dnclist_id or NIL_UUID, status=job.status, rows_total=job.rows_total,
            rows_imported=job.rows_imported, rows_rejected=job.rows_rejected,
            rows_duplicate=job.rows_duplicate, errors=job.errors,
            tm_create=format_timestamp(job.tm_create), tm_end=format_timestamp(job.tm_end),
        )
