"""Value objects and pure rules: no I/O, no grpc, no SQL."""
