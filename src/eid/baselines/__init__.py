"""eid.baselines."""
