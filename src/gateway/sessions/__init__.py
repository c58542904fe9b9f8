"""Brokered sessions: the client's token and each side's own token for it.

``table`` is the pure bookkeeping (client token → each side's token, idle expiry, LRU
bound); ``broker`` turns a client's request into the request for a side and the side's
answer back into the client's, for the dispatcher and the shadow runner alike; ``peers``
lets the workers of one gateway ask each other for sessions they did not see.
"""
