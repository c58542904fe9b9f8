"""Shadow comparison: prove parity field by field before a route moves to the new side.

The pure core (:mod:`.compare`, :mod:`.noise`) turns two answers into a
:class:`~.compare.Comparison` and comparisons into verdicts, by the rules and
thresholds of :mod:`gateway.comparison` (values config and telemetry share); the
rest keeps them: :mod:`.pseudonym` (HMAC pseudonyms so no PNR is stored),
:mod:`.store` (the SQLite mismatch store) and :mod:`.report` (``cpr-gateway diff``).
Nothing here imports telemetry: the runner that calls shadows emits events.
"""
