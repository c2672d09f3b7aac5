"""The models shipped inside the package, and :func:`resolve_model`, which turns a name or a run folder into a folder.

Each shipped model is a run folder in ``eid/zoo/models/NAME`` (the files of :data:`ZOO_FILES` + ``MODEL.md``), built
by ``scripts/build_models.py``. Everything that loads a model (``eid dehaze --model``, ``Dehazer.from_pretrained``,
``--init-from``) calls :func:`resolve_model` first, so a user's run folder and a shipped name take the same path.

>>> sorted(shipped_models())
['microscopy', 'natural']
>>> resolve_model("microscopy") == MODELS_DIR / "microscopy"
True
"""

from __future__ import annotations

from pathlib import Path

from eid.errors import EIDError
from eid.run_layout import CONFIG, DEHAZER, MODEL_CARD, OPERATOR, WEIGHTS_SUFFIX

MODELS_DIR = Path(__file__).resolve().parent / "models"
"""Where the shipped run folders live (package data)."""
ZOO_FILES = (
    CONFIG,
    *(stem + suffix for stem in (OPERATOR, DEHAZER) for suffix in (WEIGHTS_SUFFIX, ".yaml")),
)
"""The files a shipped model copies from its run folder (its card, ``MODEL.md``, is written for it)."""


def shipped_models() -> dict[str, Path]:
    """Name -> folder of every shipped model (a folder of :data:`MODELS_DIR` holding a model card)."""
    if not MODELS_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(MODELS_DIR.iterdir()) if (p / MODEL_CARD).is_file()}


def resolve_model(name_or_path: str | Path) -> Path:
    """The run folder of ``name_or_path``: an existing folder as it is, else the shipped model of that name.

    An existing folder wins over a shipped name, so ``./microscopy`` (a user's run) is never shadowed.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    models = shipped_models()
    if str(name_or_path) in models:
        return models[str(name_or_path)]
    if path.exists():
        raise EIDError(
            f"{path} is a file; give a run folder (eid train --out) or a shipped model name"
        )
    names = ", ".join(models) or "none installed"
    raise EIDError(
        f"{name_or_path}: no such folder or shipped model; give a run folder or one of: {names} (eid models)"
    )


def model_summary(folder: str | Path) -> str:
    """The one-line summary of a model card: its first line of text after the title ('' without a card)."""
    card = Path(folder) / MODEL_CARD
    if not card.is_file():
        return ""
    lines = [line.strip() for line in card.read_text(encoding="utf-8").splitlines()]
    return next((line for line in lines if line and not line.startswith("#")), "")
