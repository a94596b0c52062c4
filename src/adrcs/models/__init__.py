"""Networks only (no training code): a registry and one file per model family."""
from adrcs.models.registry import create_model, list_models, model_arg_names, register
from adrcs.models import cnn, cnn1d, ffn, inception1d, lenet1d, resnet1d, vgg1d  # noqa: F401  (registers)

__all__ = ["create_model", "list_models", "model_arg_names", "register"]
