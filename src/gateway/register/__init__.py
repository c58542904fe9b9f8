"""The synthetic CPR register: the person model, its generator and its SQLite store.

``gateway.register.generate.generate`` writes a register file; :class:`Register`
reads one. (``generate`` is not re-exported here: it would hide its own module.)
"""

from gateway.register.person import Person
from gateway.register.store import Register

__all__ = ["Person", "Register"]
