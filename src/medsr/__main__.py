"""``python -m medsr`` runs the command line (used under ``torchrun``)."""

from medsr.cli import main

main()
