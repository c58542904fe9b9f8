"""Canary route switching that drives itself (docs/canary.md): step plans gated on evidence."""
