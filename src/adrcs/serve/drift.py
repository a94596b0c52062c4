"""Moved to `adrcs.monitoring.drift` (training imports it too); kept as an alias for old imports."""
from adrcs.monitoring.drift import *  # noqa: F401,F403
from adrcs.monitoring.drift import DriftConfig, DriftMonitor, Reference  # noqa: F401
