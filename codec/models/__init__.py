"""INR model families, registered by name. Importing this package registers every model."""

from codec.models import diner, fourier, mfn, siren, spinr, wire  # noqa: F401  (registration side effects)
from codec.models.base import INR, MODELS, Stage, build_model, register_model

__all__ = ["INR", "MODELS", "Stage", "build_model", "register_model"]
