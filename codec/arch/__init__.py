"""The numpy forward passes: one module per model family, mirroring ``codec/models/``, registered by name.

``codec.arch.base`` holds the interface (:class:`ArchDecoder`: trunk steps and a readout) and the
registry; each family module imports only the base (and, for SPINR, SIREN's sine-MLP fields), so the
package has no import circle. Importing the package registers every family. No torch anywhere here.
"""

from codec.arch import diner, fourier, mfn, siren, spinr, wire  # noqa: F401  (registration side effects)
from codec.arch.base import (
    DECODERS,
    MODEL_IDS,
    ArchDecoder,
    ChainDecoder,
    Params,
    decoder_for,
    model_name,
    read_arch,
    register_decoder,
    write_arch,
)

__all__ = [
    "DECODERS",
    "MODEL_IDS",
    "ArchDecoder",
    "ChainDecoder",
    "Params",
    "decoder_for",
    "model_name",
    "read_arch",
    "register_decoder",
    "write_arch",
]
