"""The cpr.v1 API as Python: generated messages and stubs (``pb``) and the lossless
Person ⇄ message mapping (``convert``). The gateway's gRPC backend calls it; the reference
services beside the product serve it. Nothing is imported here, so that loading the
mapping does not load grpc.
"""
