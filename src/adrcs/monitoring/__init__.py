"""Monitoring of a deployed model: drift of its predictions against its validation reference.

Below the service and beside training (``adrcs train`` writes the reference), so both may import it."""
from adrcs.monitoring.drift import DriftConfig, DriftMonitor, Reference

__all__ = ["DriftConfig", "DriftMonitor", "Reference"]
