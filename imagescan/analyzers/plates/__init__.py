"""License-plate engines: `rapid` (default, RapidOCR + onnxruntime) and `openalpr` (optional).

Engines are imported by name through `imagescan.analyzers.load_plate_recognizer`;
this package itself imports no engine, so importing it is cheap.
"""
