"""eid.losses."""
