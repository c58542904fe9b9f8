"""Brokered sessions: the client's token and each side's own token for it.

``table`` is the pure bookkeeping (client token → each side's token, idle expiry, LRU
bound); ``peers`` lets the workers of one gateway ask each other for sessions they did
not see.
"""
