"""Metrics (Prometheus): what the service counts as it runs, for /metrics on the HTTP side port."""

# Seconds between reads of the queue gauges from the database.
DEFAULT_QUEUE_REFRESH = 15.0
