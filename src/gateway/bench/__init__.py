"""`cpr-gateway bench`: what the gateway costs on top of the mainframe, and of HAProxy.

See docs/benchmarks.md. :mod:`gateway.bench.cli` defines the command line and
imports nothing heavy; :mod:`gateway.bench.run` runs it.
"""
