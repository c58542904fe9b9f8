"""cpr-gateway: a strangler-fig gateway for CPR Direkte."""
