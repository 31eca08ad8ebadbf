"""``memory://``: the reference evaluator as a backend (process-local, for tests and prototypes)."""
