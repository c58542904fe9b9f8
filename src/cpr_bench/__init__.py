"""`cpr-gateway bench`: what the gateway costs on top of the mainframe, and of HAProxy.

See docs/benchmarks.md. :mod:`cpr_bench.cli` defines the command line and
imports nothing heavy; :mod:`cpr_bench.run` runs it.
"""
