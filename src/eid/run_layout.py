"""The file names of a run folder (``--out`` of ``eid train-operator`` and ``eid train``), in one place.

::

    RUN/config.yaml                  the resolved config (written when a run starts or resumes)
    RUN/inputs.yaml                  the input folders, for --resume to check
    RUN/checkpoints/last.ckpt        what --resume continues from (+ periodic epochNNNN.ckpt)
    RUN/operator.{safetensors,yaml}  stage 1's export (eid.physics.learned)
    RUN/dehazer.{safetensors,yaml}   stage 2's export (eid.models.dehazer)
    RUN/MODEL.md                     the model card (eid.training.model_card), written with the last export

The names are plain constants on the ground floor so that every layer can use them; the rules of a run folder
(new run, ``--resume``, a failed start) are :class:`eid.training.run_folder.RunFolder`'s.
"""

CONFIG = "config.yaml"
INPUTS = "inputs.yaml"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
OPERATOR = "operator"
"""Stem of stage 1's export: ``operator.safetensors`` + ``operator.yaml``."""
DEHAZER = "dehazer"
"""Stem of stage 2's export: ``dehazer.safetensors`` + ``dehazer.yaml``."""
WEIGHTS_SUFFIX = ".safetensors"
MODEL_CARD = "MODEL.md"
"""The model card: what the run was trained on, how, its scores, intended use, limits and licences."""
