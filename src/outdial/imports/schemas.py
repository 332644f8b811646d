"""Response shapes of import jobs."""

import uuid
from typing import Literal

from pydantic import BaseModel

from outdial.models import ImportJob
from outdial.timestamps import format_timestamp


class RowErrorOut(BaseModel):
    row: int
    field: str
    message: str


class ImportJobOut(BaseModel):
    id: uuid.UUID
    outdial_id: uuid.UUID
    status: Literal["running", "done", "failed"]
    rows_total: int
    rows_imported: int
    rows_rejected: int
    rows_duplicate: int
    errors: list[RowErrorOut]
    tm_create: str
    tm_end: str | None

    @classmethod
    def of(cls, job: ImportJob) -> "ImportJobOut":
        return cls(
            id=job.id, outdial_id=job.outdial_id, status=job.status, rows_total=job.rows_total,
            rows_imported=job.rows_imported, rows_rejected=job.rows_rejected,
            rows_duplicate=job.rows_duplicate, errors=job.errors,
            tm_create=format_timestamp(job.tm_create), tm_end=format_timestamp(job.tm_end),
        )
