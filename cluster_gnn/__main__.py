"""``python -m cluster_gnn`` runs the command-line interface."""
import sys

from .cli import main

sys.exit(main())
