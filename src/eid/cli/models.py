"""``eid models``: the models shipped with the package, by name, with their cards' one-line summaries."""

from __future__ import annotations

from eid.cli import app


@app.command("models")
def models() -> None:
    """List the shipped models: name, folder and the summary line of each model card (MODEL.md).

    Use a name wherever a run folder is accepted: `eid dehaze --model NAME`, `eid.Dehazer.from_pretrained(NAME)`,
    `eid train-operator --init-from NAME`, `eid train --init-from NAME`. The full card is NAME's MODEL.md.
    """
    from eid.zoo import model_summary, shipped_models

    found = shipped_models()
    if not found:
        print("no shipped models in this installation")
    for name, folder in found.items():
        print(f"{name}\t{model_summary(folder)}\t{folder}")
