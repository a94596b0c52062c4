"""ADRCS: Automated Defect Recognition and Classification System.

Python API (each CLI verb mirrors one function)::

    import adrcs
    cfg = adrcs.load_config("configs/wm811k_ffn.yaml", {"epochs": 5})
    adrcs.train(cfg, ["train.pkl.xz"], ["val.pkl.xz"], "runs/ffn")
    report = adrcs.evaluate("runs/ffn", "test.pkl.xz", "report.json")
    table = adrcs.predict("runs/ffn", "new_maps.pkl", "predictions.csv")
    gan = adrcs.create_synthesizer("gan").fit(adrcs.load("train.pkl.xz"))
    donuts = gan.sample("Donut", 500)          # uint8 die codes (500, 32, 32)
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["train", "evaluate", "predict", "info", "load", "load_config", "Pipeline", "synth_fit", "synth_sample",
           "synth_evaluate", "create_synthesizer", "load_synthesizer"]


def __getattr__(name: str):  # lazy: `import adrcs` stays cheap, torch loads on first use
    if name in ("train", "evaluate", "predict", "info", "synth_fit", "synth_sample", "synth_evaluate"):
        from adrcs import api

        return getattr(api, name)
    if name == "load":
        from adrcs.data import load

        return load
    if name == "load_config":
        from adrcs.config import load_config

        return load_config
    if name in ("create_synthesizer", "load_synthesizer"):
        from adrcs import synth

        return getattr(synth, name)
    if name == "Pipeline":
        from adrcs.pipeline import Pipeline

        return Pipeline
    raise AttributeError(f"module 'adrcs' has no attribute {name!r}")
