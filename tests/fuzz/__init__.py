"""spinr's fuzz harness: structure-aware generators of hostile bitstreams, run through every decode
entry point, each outcome classified as a documented error, a successful decode, or anything else.

- :mod:`fuzz.source`: where the randomness comes from (a seeded ``random.Random`` for long runs,
  hypothesis's ``data.draw`` for the test suite, which shrinks what fails), behind one interface.
- :mod:`fuzz.seeds`: valid streams of every model family to mutate, per format version (committed
  under ``tests/fuzz_corpus/seeds/``; ``python -m fuzz seeds`` rebuilds them with torch).
- :mod:`fuzz.formats`: a generator per format version (``GENERATORS``), each a set of mutation
  families: :mod:`fuzz.v2` is format 2 (binary header, entropy-coded unit payloads; the default),
  :mod:`fuzz.v1` format 1 (msgpack header, zstd payloads), which readers still decode. Another
  version joins by implementing :class:`fuzz.formats.FormatGenerator`.
- :mod:`fuzz.targets`: the entry points (``load_bitstream``, ``ProgressiveDecoder.add_packet`` +
  ``decode``, ``spinr info/decode`` through ``main(argv)``) and how an outcome is classified.
- :mod:`fuzz.driver`: the long run: a worker process per input stream, a JSON report and
  reproducers of every distinct failure; :mod:`fuzz.worker`: that process (a memory limit, RSS
  tracking) and the watchdog that judges hangs.

Run ``make fuzz`` (100,000 v2 inputs), ``python -m fuzz run --format 1`` for v1, or ``python -m fuzz run --help`` with ``tests`` on ``PYTHONPATH``.
"""
