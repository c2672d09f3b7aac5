"""``--init-from NAME|RUN`` of ``eid train-operator`` and ``eid train``: fine-tuning from a shipped model or a run."""

from __future__ import annotations

from pathlib import Path

from eid.errors import EIDError

INIT_FROM_HELP = (
    "Start a new run from the weights of a shipped model (eid models) or of a run folder, then train on your data "
    "(fine-tuning). The architecture must match: use the preset the model was made with."
)


def init_weights_from(init_from: str | None, resume: bool) -> Path | None:
    """The run folder of ``--init-from`` (``None`` when not given); refused with ``--resume``."""
    if init_from is None:
        return None
    if resume:
        raise EIDError(
            "--init-from starts a new run; drop it with --resume (the run continues from its checkpoint)"
        )
    from eid.zoo import resolve_model

    return resolve_model(init_from).resolve()
