"""Pixels in, network input out: the one image decoder, pre-processing and segmentation.

Inference (every source), training, INT8 calibration (ONNX Runtime and TensorRT) and the
benchmark all decode files through :func:`phytoscope.imaging.decode.read_image` and
prepare them with :mod:`phytoscope.imaging.preprocess`, so what the model saw while
learning is exactly what it sees in the field. Whole microscope frames are cut into
organisms by :mod:`phytoscope.imaging.segment`.

The package depends on numpy, OpenCV, tifffile and :mod:`phytoscope.modelcard` only, so
sources, backends, training and the benchmark can all sit above it.
"""
