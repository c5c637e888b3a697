"""gRPC transport: converts messages, calls the engine, maps errors. No SQL here."""
