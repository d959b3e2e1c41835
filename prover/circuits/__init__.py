"""Core circuit operations: ONNX intake, settings search, ezkl compilation, SRS."""
