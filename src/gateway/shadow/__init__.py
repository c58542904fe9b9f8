"""Shadow comparison: prove parity field by field before a route moves to the new side.

The pure core (:mod:`.compare`, :mod:`.normalise`, :mod:`.noise`) turns two
answers into a :class:`~.compare.Comparison` and comparisons into verdicts; the
rest keeps them: :mod:`.pseudonym` (HMAC pseudonyms so no PNR is stored),
:mod:`.store` (the SQLite mismatch store) and :mod:`.report` (``cpr-gateway diff``).
Nothing here imports telemetry: the runner that calls shadows emits events.
"""
