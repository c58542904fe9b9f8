"""The modern side: the cpr.v1 gRPC services, their store, and the migration from the register.

``convert`` maps the register's model to the cpr.v1 messages and back; ``store``
is the modern store (SQLite, schema-versioned); ``migrate`` copies a legacy
register into it; ``services`` implements PersonService, SubscriptionService and
AuthService; ``server`` runs them with health and reflection. ``pb`` is generated
by ``scripts/gen_proto.py`` from ``proto/``. Nothing is imported here, so that
``cpr-gateway migrate`` does not load grpc.
"""
