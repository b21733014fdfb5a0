"""One module per ``phytoscope`` sub-command: ``HELP``, ``configure(parser)``, ``run(args)``."""
