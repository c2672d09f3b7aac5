"""``python -m eid``: the ``eid`` command where its script is not on ``PATH``."""

from eid.cli import main

main()
