"""``python -m phytoscope`` runs the same entry point as the ``phytoscope`` command."""

from phytoscope.cli import main

raise SystemExit(main())
