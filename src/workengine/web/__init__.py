"""The HTTP side port: /metrics, /healthz, /readyz and the dashboard, served in the gRPC server's
event loop."""

# The side port when none is given (the gRPC port is 50051).
DEFAULT_HTTP_PORT = 8081
