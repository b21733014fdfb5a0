"""phytoscope: desk-side analyser for harmful algal blooms.

Importing the package is deliberately cheap: no runtime (ONNX Runtime, TensorFlow,
TensorRT, Qt) is imported until a command or backend needs it.
"""

__version__ = "0.1.0"
