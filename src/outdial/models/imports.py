"""Import jobs, the full report of their rejected rows, and which target each row became."""

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from outdial.models.base import Base

# How many row errors a job resource carries; the full report is import_row_errors.
JOB_ERRORS_SHOWN = 100


class ImportJob(Base):
    __tablename__ = "import_jobs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    # What the rows go into: an outdial's targets, or a do-not-call list's entries (the other
    # is None).
    outdial_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("outdials.id"))
    dnclist_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("dnclists.id"))
    status: Mapped[str] = mapped_column(String(16), default="running")  # running, done, failed
    format: Mapped[str] = mapped_column(String(16))
    default_region: Mapped[str] = mapped_column(String(8), default="")
    validation: Mapped[str] = mapped_column(String(16), default="possible")
    dedupe: Mapped[bool] = mapped_column(default=False)
    rows_total: Mapped[int] = mapped_column(default=0)
    rows_imported: Mapped[int] = mapped_column(default=0)
    rows_rejected: Mapped[int] = mapped_column(default=0)
    rows_duplicate: Mapped[int] = mapped_column(default=0)
    # The first JOB_ERRORS_SHOWN {row, field, message}, plus why the job failed if it did.
    errors: Mapped[list] = mapped_column(default=list)
    tm_create: Mapped[dt.datetime]
    tm_end: Mapped[dt.datetime | None]
    # The process running the job, and until when it is known alive: it renews the lease while
    # it runs; once the lease has expired any server may declare the job failed.
    owner: Mapped[str] = mapped_column(String(64), default="")
    tm_lease_expire: Mapped[dt.datetime | None]
    # A deduping job holds its outdial's dedupe turn from reading the outdial's numbers to its
    # commit; one job at a time per outdial (see imports/service.py).
    dedupe_turn: Mapped[bool] = mapped_column(default=False)

    __table_args__ = (
        Index("ix_import_jobs_outdial_id", "outdial_id", "tm_create"),
        Index("ix_import_jobs_dnclist_id", "dnclist_id", "tm_create"),
        Index("ix_import_jobs_running", "status", postgresql_where=text("status = 'running'"),
              sqlite_where=text("status = 'running'")),
    )


class ImportRowError(Base):
    __tablename__ = "import_row_errors"

    import_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("import_jobs.id"), primary_key=True)
    row: Mapped[int] = mapped_column(primary_key=True)
    field: Mapped[str] = mapped_column(primary_key=True)
    message: Mapped[str]


class ImportRowTarget(Base):
    __tablename__ = "import_row_targets"

    # No foreign key on PostgreSQL (migration 0007): only the import writes these rows, in the
    # transaction that ends its job, and jobs are never deleted.
    import_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("import_jobs.id"), primary_key=True)
    row: Mapped[int] = mapped_column(primary_key=True)
    target_id: Mapped[uuid.UUID]
