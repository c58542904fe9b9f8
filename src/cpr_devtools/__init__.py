"""Developer tools beside the product: ``cpr-gateway up`` (the whole default stack), a
client that behaves like existing CPR Direkte clients (``lookup``, ``traffic``), the
development CA, and the launcher of the reference services. The gateway never imports it.
"""
