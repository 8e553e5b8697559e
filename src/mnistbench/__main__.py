"""``python -m mnistbench``: the same as the ``mnistbench`` command."""

from mnistbench.cli import main

main()
