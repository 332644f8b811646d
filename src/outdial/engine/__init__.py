"""The dialing engine: turns idle targets of running campaigns into attempts, and into done."""

from outdial.engine.rules import choose_destination
from outdial.engine.runner import BackgroundEngine, run_worker
from outdial.engine.worker import Engine, EngineConfig

__all__ = ["BackgroundEngine", "Engine", "EngineConfig", "choose_destination", "run_worker"]
