"""eid.training."""
