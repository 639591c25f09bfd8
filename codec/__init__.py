"""spinr codec: implicit neural representations of images, one packet per layer.

Importing ``codec`` (and the decoder modules) never imports torch, so a decoder-only install needs
numpy, pillow, msgpack and zstandard alone. Training lives in ``codec.train`` and ``codec.models``.
"""

from codec.errors import BitstreamError, Cancelled, ConfigError, ImageError, SpinrError, TrainingDiverged

__all__ = ["BitstreamError", "Cancelled", "ConfigError", "ImageError", "SpinrError", "TrainingDiverged"]
__version__ = "0.1.0"
