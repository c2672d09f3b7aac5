"""eid: unsupervised image dehazing by equivariant learning."""

__version__ = "0.1.0"
