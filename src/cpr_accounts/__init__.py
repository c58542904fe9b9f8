"""What a CPR Direkte backend keeps about its customers: users, passwords and locks, tokens
and subscriptions.

Both simulated backends build on it: the mainframe emulator (:mod:`cpr_mainframe`) and the
reference gRPC services (:mod:`cpr_services`). The gateway never imports it.
"""
