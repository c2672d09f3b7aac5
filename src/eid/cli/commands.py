"""Import every command module so that each registers its commands on ``eid.cli.app``."""

from eid.cli import (  # noqa: F401
    data,
    dehaze,
    demo,
    evaluate,
    export,
    models,
    report,
    synth,
    train,
    train_operator,
)
