"""The HTTP edge: CloudEvents and webhook ingest, health and readiness (aiohttp).

The only place that maps errors to HTTP statuses, and that answers 2xx only after JetStream stored
everything a request carried.
"""
