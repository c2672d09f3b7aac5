"""eid.physics."""
