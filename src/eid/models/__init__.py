"""eid.models."""
