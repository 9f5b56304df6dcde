"""The embedded local stack: real PostgreSQL, NATS JetStream and OpenBao processes started from
their Python wheels, for `make run` and for the test harness. Not used in a cluster."""
