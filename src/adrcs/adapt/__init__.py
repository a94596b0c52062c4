"""Adaptive retraining from reviewed inspections: `adapt(store, champion_dir, out_dir)` trains a challenger
and promotes it only if it is not worse than the champion on the fixed audit set."""
from adrcs.adapt.champion_challenger import Decision, compare
from adrcs.adapt.retrain import adapt
from adrcs.adapt.reviewed_data import is_audit, reviewed_sets

__all__ = ["Decision", "adapt", "compare", "is_audit", "reviewed_sets"]
