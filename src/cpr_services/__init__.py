"""The reference cpr.v1 gRPC services: what a new CPR system could look like, beside the product.

``store`` is the modern store (SQLite or PostgreSQL, schema-versioned); ``migrate`` copies a
legacy register into it; ``services`` implements PersonService, SubscriptionService and
AuthService; ``server`` runs them with health and reflection; ``drift`` makes them differ from
the mainframe the way a real migration does. The messages and the Person mapping are the
product's (:mod:`gateway.cprv1`). Nothing is imported here, so that ``cpr-gateway migrate``
does not load grpc.
"""
