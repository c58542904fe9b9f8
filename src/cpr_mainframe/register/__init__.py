"""The synthetic CPR register: its deterministic generator and its SQLite store.

``cpr_mainframe.register.generate.generate`` writes a register file; :class:`Register`
reads one. The person model itself is the product's (:mod:`gateway.domain.person`).
"""

from cpr_mainframe.register.store import Register

__all__ = ["Register"]
