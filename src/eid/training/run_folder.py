"""The run folder of a training command: its layout, its start and its ``--resume`` rules, in one place.

A run folder holds ``config.yaml`` (the resolved config), ``inputs.yaml`` (the input folders it trains on, for
``--resume`` to check), ``checkpoints/last.ckpt`` (+ periodic snapshots), the exported weights and logs.
:meth:`RunFolder.starting` wraps the start of a run: a start that fails before the first checkpoint removes what
it created, so the rerun is not blocked by a stub folder that neither a new run nor ``--resume`` accepts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from eid.config import config_to_dict, merge_dicts, saved_config
from eid.errors import EIDError, describe_os_error
from eid.run_layout import (
    CHECKPOINT_DIR,
    CONFIG,
    DEHAZER,
    INPUTS,
    LAST_CHECKPOINT,
    MODEL_CARD,
    OPERATOR,
    WEIGHTS_SUFFIX,
)
from eid.utils import atomic_write, remove_stale_temps

PRESET = "--preset"
"""Key of the preset's name in ``inputs.yaml``: a preset is a name, not a folder to resolve."""

Inputs = Mapping[str, "str | Sequence[str | Path] | None"]


def is_ddp_worker() -> bool:
    """True in the extra processes Lightning's DDP launcher starts (they re-run the same command)."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 or int(os.environ.get("NODE_RANK", "0")) > 0


def resolved_inputs(inputs: Inputs) -> dict[str, str | list[str]]:
    """Absolute paths of the given input options (``None`` = not given; ``asm`` is kept as it is)."""
    out: dict[str, str | list[str]] = {}
    for option, value in inputs.items():
        if value is None:
            continue
        if isinstance(value, (str, Path)):
            out[option] = value if value == "asm" else str(Path(value).resolve())
        else:
            out[option] = [str(Path(v).resolve()) for v in value]
    return out


class RunFolder:
    """The folder ``--out`` of ``eid train-operator`` and ``eid train``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def last(self) -> Path:
        """The checkpoint ``--resume`` continues from."""
        return self.path / CHECKPOINT_DIR / LAST_CHECKPOINT

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def operator(self) -> Path:
        """Stem of stage 1's export (``operator.safetensors`` + ``operator.yaml``)."""
        return self.path / OPERATOR

    @property
    def dehazer(self) -> Path:
        """Stem of stage 2's export (``dehazer.safetensors`` + ``dehazer.yaml``)."""
        return self.path / DEHAZER

    @property
    def model_card(self) -> Path:
        """``MODEL.md``, the model card written with the last export."""
        return self.path / MODEL_CARD

    @property
    def operator_weights(self) -> Path:
        return self.operator.with_suffix(WEIGHTS_SUFFIX)

    @property
    def dehazer_weights(self) -> Path:
        return self.dehazer.with_suffix(WEIGHTS_SUFFIX)

    def check_new(self, inputs: Inputs) -> None:
        """Refuse a new run into a file, an input folder, or a folder holding anything but a killed run's temp files."""
        if self.path.exists() and not self.path.is_dir():
            raise EIDError(f"--out {self.path} is a file; give a folder for the run")
        for option, folders in resolved_inputs(inputs).items():
            if str(self.path.resolve()) in ([folders] if isinstance(folders, str) else folders):
                raise EIDError(
                    f"--out {self.path} is also an input folder ({option}); choose a new folder for the run"
                )
        if not self.path.is_dir():
            return
        remove_stale_temps(self.path)
        if _holds_no_file(self.path):
            return
        if self.last.is_file():
            raise EIDError(
                f"{self.path}: run folder already exists; pass --resume to continue it or choose another --out"
            )
        raise EIDError(
            f"{self.path}: folder already exists and holds no checkpoint to resume; remove it or choose another --out"
        )

    def check_resume(self, inputs: Inputs, preset: str | None = None) -> Path:
        """The checkpoint to resume from, once the inputs (and the ``--preset``, if given) match the run's; a killed
        run's temp files are removed."""
        if not self.last.is_file():
            raise EIDError(f"{self.last}: nothing to resume; start a new run without --resume")
        remove_stale_temps(self.path)
        saved = self.saved_inputs()
        given = resolved_inputs(inputs) | ({PRESET: preset} if preset is not None else {})
        for option, value in given.items():
            if option == PRESET and PRESET not in saved:
                raise EIDError(
                    f"--preset {preset}: this run did not record its preset (it predates that); resume without --preset"
                )
            if option in saved and saved[option] != value:
                raise EIDError(
                    f"{option} {_show(value)} differs from the run's {_show(saved[option])}; resume with the run's "
                    f"{option} or start a new run in another --out"
                )
        return self.last

    @staticmethod
    def check_unchanged(
        config_class: type, saved: dict[str, Any], given: Mapping[str, dict[str, Any]]
    ) -> None:
        """Refuse an option given with ``--resume`` that would change a setting fixed at the start (crop, batch
        size, seed, model...), instead of ignoring it. ``given`` maps each option as typed (``"--crop 32"``) to
        the config fields it sets; an option that repeats the run's value is accepted, so the start's command
        line can be rerun with ``--resume``.

        >>> from eid.training.eid_config import EIDConfig
        >>> RunFolder.check_unchanged(EIDConfig, {"crop": 16}, {"--crop 16": {"crop": 16}})
        >>> RunFolder.check_unchanged(EIDConfig, {"crop": 16}, {"--crop 32": {"crop": 32}})
        Traceback (most recent call last):
        eid.errors.EIDError: --crop 32 would change the run's crop from 16 to 32: --resume keeps the settings of the start (only --max-steps, --epochs and --lr change); drop the option or start a new run in another --out
        """
        before = _flat(config_to_dict(saved_config(config_class, saved, where="run config")))
        for option, fields in given.items():
            after = _flat(
                config_to_dict(saved_config(config_class, merge_dicts(saved, fields), where=option))
            )
            for key, value in after.items():
                if value != before.get(key):
                    raise EIDError(
                        f"{option} would change the run's {key} from {before.get(key)!r} to {value!r}: --resume keeps "
                        "the settings of the start (only --max-steps, --epochs and --lr change); drop the option or "
                        "start a new run in another --out"
                    )

    def saved_inputs(self) -> dict[str, str | list[str]]:
        """The inputs recorded at the start (``{}`` for runs made before they were recorded)."""
        path = self.path / INPUTS
        return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}

    def record_inputs(self, inputs: Inputs, preset: str) -> None:
        """Write ``inputs.yaml``: what :meth:`check_resume` compares the inputs and preset of a resume with."""
        with atomic_write(self.path / INPUTS) as tmp:
            tmp.write_text(
                yaml.safe_dump({**resolved_inputs(inputs), PRESET: preset}, sort_keys=False)
            )

    @contextlib.contextmanager
    def starting(self, resume: bool = False) -> Iterator[RunFolder]:
        """Run a start (or a resume): OS errors become one line naming the file and the remedy, and a new run
        that fails before its first checkpoint leaves no stub behind (the folder it created, or what it put in
        the empty folder it was given, is removed). DDP workers leave the folder to rank 0."""
        if is_ddp_worker():
            yield self
            return
        existed = self.path.is_dir()
        try:
            yield self
        except BaseException as exc:
            if not resume and not self.last.is_file():
                self._remove_stub(existed)
            if isinstance(exc, OSError):
                raise EIDError(describe_os_error(exc)) from exc
            raise

    def _remove_stub(self, existed: bool) -> None:
        if not existed:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        for child in self.path.iterdir() if self.path.is_dir() else ():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


def prepare_run_dir(run_dir: str | Path, resume: bool, inputs: Inputs | None = None) -> Path | None:
    """Apply the ``--resume`` rules of :class:`~eid.training.run_folder.RunFolder`; return the checkpoint to
    resume from (or ``None`` for a new run, whose folder is then created).

    A new run refuses a non-empty ``run_dir`` (nothing is overwritten); ``resume`` needs
    ``run_dir/checkpoints/last.ckpt`` and the ``inputs`` (option -> folders) the run was started with.
    """
    folder = RunFolder(run_dir)
    if resume:
        return folder.check_resume(inputs or {})
    folder.check_new(inputs or {})
    folder.path.mkdir(parents=True, exist_ok=True)
    return None


def _holds_no_file(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but (nested) empty folders, e.g. once a killed run's temp files are gone."""
    return all(
        child.is_dir() and not child.is_symlink() and _holds_no_file(child)
        for child in folder.iterdir()
    )


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict as ``{"data.crop": 16, ...}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out


def _show(value: str | list[str]) -> str:
    return value if isinstance(value, str) else ",".join(value)
