"""Deployment: exporting trained models for other runtimes (`export_onnx`)."""
