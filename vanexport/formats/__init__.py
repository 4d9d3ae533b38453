"""The artifact formats, as typed records: what an ONNX file says about itself (metadata_props), the manifest beside
every TensorRT plan, and a bundle's manifest. This is the only code that parses or writes them; it needs neither
torch, onnx nor TensorRT at import time (reading an ONNX file's metadata imports onnx inside the function)."""
