"""eid: unsupervised image dehazing by equivariant learning."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """Lazy top-level API, so that ``import eid`` stays light: ``eid.Dehazer`` (see :mod:`eid.inference`)."""
    if name == "Dehazer":
        from eid.inference import Dehazer

        return Dehazer
    raise AttributeError(f"module 'eid' has no attribute {name!r}")
