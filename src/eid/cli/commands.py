"""Import every command module so that each registers its commands on ``eid.cli.app``."""

from eid.cli import data, dehaze, demo, evaluate, models, report, synth, train, train_operator  # noqa: F401
