"""Actions that rules dispatch: smoke tests and verifications. Each module registers itself."""
