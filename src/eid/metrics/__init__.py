"""eid.metrics."""
