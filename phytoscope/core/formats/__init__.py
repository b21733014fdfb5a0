"""Files other tools of the field read and write: IFCB Dashboard class scores, EcoTaxa.

Writers take finished predictions and the facts of their sample, never command-line
options, so ``phytoscope classify``, ``phytoscope archive`` and the window all write the
same files.
"""
