"""Benchmarks of trigger-router side by side with peer systems, run on this machine."""
