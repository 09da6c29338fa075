"""What an operator sees of the service working: Prometheus metrics (``metrics``)."""
