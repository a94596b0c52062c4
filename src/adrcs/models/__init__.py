"""Networks only (no training code): a registry and one file per model family."""
from adrcs.models.registry import create_model, list_models, register
from adrcs.models import cnn, ffn  # noqa: F401  (registers the models)

__all__ = ["create_model", "list_models", "register"]
