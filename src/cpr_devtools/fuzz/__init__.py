"""Fuzzing the gateway's parsers of hostile bytes: the request framer, the answer decoder, the
routing.yaml loader and the PROXY v2 header reader (docs/fuzzing.md).

:mod:`.targets` holds one function per parser that takes arbitrary bytes and fails
(``AssertionError``, or whatever the parser let escape) when the parser breaks its promise;
:mod:`.seeds` builds their seed corpora from real records; :mod:`.worker` runs one target under
libFuzzer (atheris), coverage-guided; ``python -m cpr_devtools.fuzz`` runs them all and reports.
"""
