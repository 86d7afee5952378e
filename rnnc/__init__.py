"""rnnc: recurrent neural networks from a declarative YAML spec.

A spec is loaded with source positions, validated (JSON Schema, then semantic and
shape rules), and compiled to a typed IR (`rnnc.ir`) that backends lower to PyTorch
for training and to ONNX for deployment. This package is the core: it imports neither
torch nor onnx.
"""

__version__ = "0.1.0"
