"""Reading a Prometheus-compatible query API, for the ``metricGate`` action: what the users' traffic says."""
