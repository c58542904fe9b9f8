"""Operator tools built on the same parts as the servers: the stack runner, a lookup client."""
