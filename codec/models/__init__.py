"""INR model families, registered by name. Importing this package registers every model."""

from codec.models import diner, fourier, mfn, siren, spinr, wire  # noqa: F401  (registration side effects)
from codec.models.base import (
    INR,
    MODELS,
    TrainingStage,
    build_model,
    model_class,
    received_model,
    register_model,
)

__all__ = ["INR", "MODELS", "TrainingStage", "build_model", "model_class", "received_model", "register_model"]
