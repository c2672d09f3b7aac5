"""eid.report."""
