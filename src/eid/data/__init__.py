"""eid.data."""
