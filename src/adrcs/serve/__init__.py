"""Inspection service: results store (``adrcs.serve.store``) and the HTTP service built on it."""
