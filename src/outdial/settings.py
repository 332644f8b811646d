"""Service settings, read from OUTDIAL_* environment variables when a process starts."""

import os

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from outdial.timestamps import TimeFormat

# The longest wait PostgreSQL takes for lock_timeout, statement_timeout and
# idle_in_transaction_session_timeout (2^31 - 1 ms, about 24.8 days): a longer one would be
# refused by the server at every connection, so it is refused here, at start-up.
LONGEST_SERVER_WAIT = 2_147_483.647
# The longest of every other duration: a hundred years. Times are worked out from them
# (now + a lease, now - a retention), which a year outside 1..9999 cannot be.
LONGEST_DURATION = 100 * 365 * 24 * 3600


class Settings(BaseSettings):
    """Everything a process needs to know; built once at start-up and passed down."""

    model_config = SettingsConfigDict(env_prefix="OUTDIAL_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///outdial.db"
    # Signs login tokens. When unset, a secret is generated once and kept in the database so that
    # every API process sharing that database accepts the same tokens.
    secret_key: str | None = None
    # Encrypts channel passwords at rest. When unset, a key is generated once and kept in the
    # database (like secret_key); set it to keep the key apart from the data it protects.
    channel_secret_key: str | None = None
    token_lifetime_seconds: int = Field(default=7 * 24 * 3600, gt=0, le=LONGEST_DURATION)
    admin_username: str | None = None
    admin_password: str | None = None
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    # Only the import route takes bodies this large; it reads them as a stream.
    max_import_bytes: int = Field(default=2 * 1024**3, gt=0)
    # Processes that check imported rows; 0 checks them in the serving process.
    import_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=0)
    # An import job's lease: renewed while it runs; a job whose lease ran out is declared failed.
    import_lease_seconds: float = Field(default=30.0, gt=0, le=LONGEST_SERVER_WAIT)
    # How long a deduping import waits for another deduping import into the same outdial to end.
    import_dedupe_wait_seconds: float = Field(default=300.0, ge=0, le=LONGEST_DURATION)
    # Rejected rows kept in a job's full report (…/errors); further ones are only counted.
    import_error_rows: int = Field(default=100_000, ge=0)
    log_level: str = "info"
    # How responses, page tokens and exports write times: VoIPbin's original form (the
    # tutorial's) or its current RFC 3339 with null for unset times.
    time_format: TimeFormat = "tutorial"

    # -- waiting on the database: every wait is bounded, and a request that runs out of patience
    # answers 503 SERVICE_UNAVAILABLE (with Retry-After) instead of hanging --------------------
    # How long a request waits for a free connection of its pool.
    db_pool_timeout_seconds: float = Field(default=3.0, gt=0, le=LONGEST_DURATION)
    # How long opening a connection to PostgreSQL may take before the server counts as
    # unreachable (503): a server that does not answer at all.
    db_connect_timeout_seconds: float = Field(default=10.0, gt=0, le=LONGEST_DURATION)
    # How long a statement waits for a lock: a row lock on PostgreSQL (lock_timeout), the
    # database's write lock on SQLite (busy_timeout).
    db_lock_timeout_seconds: float = Field(default=3.0, gt=0, le=LONGEST_SERVER_WAIT)
    # Longest statement (PostgreSQL statement_timeout), for the API's and the engine's sessions.
    db_statement_timeout_seconds: float = Field(default=30.0, gt=0, le=LONGEST_SERVER_WAIT)
    # PostgreSQL: an engine session idle inside a transaction this long (its process hangs) is
    # ended by the server, so the locks it held are freed for the other workers.
    engine_idle_in_transaction_seconds: float = Field(default=10.0, gt=0, le=LONGEST_SERVER_WAIT)

    # -- the dialing engine ------------------------------------------------------------------
    # `outdial serve` runs the engine beside the API unless this is off (then run `outdial worker`).
    engine_in_process: bool = True
    dialer: str = "simulated"
    # How long a claim stays good without a heartbeat; a dead worker's attempts come back after it.
    engine_lease_seconds: float = Field(default=30.0, gt=0, le=LONGEST_DURATION)
    # How often an idle engine looks for work (it looks again at once after finding some).
    engine_poll_seconds: float = Field(default=0.2, gt=0, le=LONGEST_DURATION)
    # Most targets claimed per campaign in one claim transaction.
    engine_claim_batch: int = Field(default=200, gt=0)
    # Most attempts one engine process holds in flight, over all campaigns.
    engine_max_in_flight: int = Field(default=10000, gt=0)
    # On SIGTERM, how long in-flight attempts may run on before they are ended as `canceled`.
    engine_shutdown_grace_seconds: float = Field(default=30.0, ge=0, le=LONGEST_DURATION)
    # PostgreSQL: how far this machine's clock may be from the database server's before its
    # processes stop taking work over by lease (attempts, webhook runs, imports; 0: not checked).
    max_clock_offset_seconds: float = Field(default=5.0, ge=0, le=LONGEST_DURATION)

    # -- events ----------------------------------------------------------------------------------
    # Events older than this are pruned by the engines (the workers, or serve's own).
    events_retention_seconds: float = Field(default=7 * 24 * 3600, gt=0, le=LONGEST_DURATION)
    # Most events deleted by one prune transaction, and how often an engine prunes.
    events_prune_batch: int = Field(default=1000, gt=0)
    events_prune_seconds: float = Field(default=60.0, gt=0, le=LONGEST_DURATION)
    # The event stream (GET /v1.0/events/stream): how often it looks for new events, and how
    # often it sends a comment line when there are none (proxies drop silent connections).
    events_poll_seconds: float = Field(default=0.5, gt=0, le=LONGEST_DURATION)
    events_heartbeat_seconds: float = Field(default=15.0, gt=0, le=LONGEST_DURATION)
    # A live stream whose client reads nothing for this long is closed (the client resumes).
    events_stall_seconds: float = Field(default=30.0, gt=0, le=LONGEST_DURATION)
    # Live streams one customer may hold open on one server process: each looks at the
    # database every events_poll_seconds.
    events_streams_per_customer: int = Field(default=20, ge=1)

    # -- the simulated dialer: outcome weights (normalized), durations, and a seed ----------
    sim_seed: int | None = None
    sim_p_answered: float = Field(default=0.55, ge=0)
    sim_p_busy: float = Field(default=0.15, ge=0)
    sim_p_no_answer: float = Field(default=0.15, ge=0)
    sim_p_rejected: float = Field(default=0.05, ge=0)
    sim_p_failed: float = Field(default=0.05, ge=0)
    sim_p_unreachable: float = Field(default=0.05, ge=0)
    sim_ring_min_ms: int = Field(default=2000, ge=0)
    sim_ring_max_ms: int = Field(default=15000, ge=0)
    sim_talk_min_ms: int = Field(default=5000, ge=0)
    sim_talk_max_ms: int = Field(default=60000, ge=0)

    # -- metrics (GET /metrics, Prometheus text) ----------------------------------------------
    # When set, /metrics answers only requests with `Authorization: Bearer <this token>`;
    # when unset (or empty), anyone who reaches the port may read it.
    metrics_token: str | None = None
    # `outdial worker` serves its own /metrics on this port when set (`--metrics-port`);
    # `outdial serve` serves it on the API's port.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"

    # -- webhooks (webhooks/): delivered by the engine's processes, beside the dialing --------
    # Connect to private, loopback, link-local and multicast addresses too (a receiver on the
    # same machine or network); off, such addresses are refused at create and at delivery.
    webhooks_allow_private_networks: bool = False
    # The same for the audio files of `play` actions (a campaign's author chooses the URLs).
    play_allow_private_networks: bool = False
    # One request's whole time (resolve, connect, send, answer); past it, the attempt failed.
    webhooks_timeout_seconds: float = Field(default=10.0, gt=0, le=LONGEST_DURATION)
    # Retries back off exponentially with jitter from this first delay, each delay at most
    # webhooks_retry_max_delay_seconds, until webhooks_retry_window_seconds after the event.
    webhooks_retry_first_delay_seconds: float = Field(default=30.0, gt=0, le=LONGEST_DURATION)
    webhooks_retry_max_delay_seconds: float = Field(default=4 * 3600.0, gt=0, le=LONGEST_DURATION)
    webhooks_retry_window_seconds: float = Field(default=24 * 3600.0, gt=0, le=LONGEST_DURATION)
    # Failed attempts in a row (over all of a webhook's deliveries) that disable the webhook.
    webhooks_disable_after_failures: int = Field(default=15, gt=0)
    # Endpoints one process delivers to at once (each over one connection at a time).
    webhooks_concurrency: int = Field(default=16, gt=0)
    # Deliveries claimed for an endpoint at once, sent in event order: the first alone, then the
    # rest pipelined on the same connection.
    webhooks_claim_batch: int = Field(default=100, gt=0)
    # A claim's lease, renewed while the process lives; a dead process's deliveries are sent
    # again by another once it runs out.
    webhooks_lease_seconds: float = Field(default=30.0, gt=0, le=LONGEST_DURATION)
    # How often an idle process looks for new events and due deliveries.
    webhooks_poll_seconds: float = Field(default=0.2, gt=0, le=LONGEST_DURATION)
    # Delivered and failed deliveries are kept this long, then pruned in batches.
    webhooks_delivery_retention_seconds: float = Field(default=7 * 24 * 3600.0, gt=0,
                                                       le=LONGEST_DURATION)

    # -- media of real calls -------------------------------------------------------------------
    # UDP ports for RTP, one even port a call (RTCP is not used); open them in the firewall.
    rtp_port_min: int = Field(default=10000, ge=1024, le=65534)
    rtp_port_max: int = Field(default=20000, ge=1024, le=65535)

    @model_validator(mode="after")
    def _clock_offset_within_the_leases(self) -> "Settings":
        # A process renews its leases every third of one and hangs up (gives up) what it
        # could not renew with a third left: a peer ahead by less than that third never takes
        # over live work (each process allows for its own clock being behind).
        leases = {"OUTDIAL_ENGINE_LEASE_SECONDS": self.engine_lease_seconds,
                  "OUTDIAL_WEBHOOKS_LEASE_SECONDS": self.webhooks_lease_seconds,
                  "OUTDIAL_IMPORT_LEASE_SECONDS": self.import_lease_seconds}
        name, shortest = min(leases.items(), key=lambda item: item[1])
        # Compared on PostgreSQL only: SQLite's processes share one machine's clock.
        checked = self.max_clock_offset_seconds > 0 and self.database_url.startswith("postgres")
        if checked and self.max_clock_offset_seconds >= shortest / 3:
            raise ValueError(
                f"OUTDIAL_MAX_CLOCK_OFFSET_SECONDS ({self.max_clock_offset_seconds:g}) must be "
                f"under a third of {name} ({shortest:g}): a clock ahead by more would take over "
                "work its owner still holds; lower it (0 turns the check off)")
        return self

    @model_validator(mode="after")
    def _rtp_port_range(self) -> "Settings":
        if self.rtp_port_max < self.rtp_port_min + (self.rtp_port_min % 2):
            raise ValueError(
                "OUTDIAL_RTP_PORT_MAX must be at least OUTDIAL_RTP_PORT_MIN and the range must "
                "hold an even port"
            )
        return self
