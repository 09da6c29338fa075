"""The engine: events routed to runs, runs executed under their policies, outcomes published.

``routing`` consumes events and records runs; ``executor`` carries runs out and publishes their
outcomes; ``runs`` is the run record and its state; ``deadletters`` every dead-letter path (ingest
items, undecodable events, runs that ended in error); ``policy`` the run-policy runtime in the
shared policy bucket; ``queries`` what clients (the CLI) may ask of the engine.
"""
