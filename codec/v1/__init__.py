"""Format version 1, read-only in spirit: the fixed 24-byte packet header, msgpack+zstd payloads, the
msgpack header with its transmitted units, min/max affine codes and the u32-framed ``.spnr`` file
(docs/FORMAT.md, "Appendix: format version 1").

Encoders write version 2 only. These modules parse v1 files and packets for compatibility, and can
re-emit a v1 stream's packets unchanged in meaning (a server that stored v1 files streams them as
v1), which is why the payload and header writers are kept.
"""
