"""The package's layers: no module imports from a layer above its own.

data / transforms / models / metrics / report / monitoring  <-  features / engine / config  <-  the saved
models (pipelines, inference)  <-  tasks and their steps (api*, synth, adapt)  <-  cli / serve.
`adapt` may use the results store (`serve.store`): it retrains from reviewed inspections."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "adrcs"
LAYERS = {
    **dict.fromkeys(("errors", "data", "transforms", "models", "metrics", "report", "monitoring", "samples"), 0),
    **dict.fromkeys(("features", "engine", "config", "checkpoint"), 1),
    **dict.fromkeys(("pipeline", "detector_pipeline", "image_classifier_pipeline", "inference"), 2),
    **dict.fromkeys(("api", "api_images", "api_image_classify", "api_synth", "api_reading", "api_lots", "api_trust", "api_explain", "api_suggest", "api_pretrain", "api_unlabeled", "api_train_steps", "tasks", "synth", "adapt", "deploy"), 3),
    **dict.fromkeys(("cli", "serve"), 4),
}
ALLOWED = {("adapt", "serve.store")}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def _imports(path: Path) -> list[str]:
    return [n.module for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom)
            and n.module and n.module.startswith("adrcs.")]


def test_every_top_level_name_has_a_layer():
    names = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    assert names <= set(LAYERS), f"give these a layer: {sorted(names - set(LAYERS))}"


def test_no_import_from_a_higher_layer():
    upward = []
    for f in SRC.rglob("*.py"):
        rel = f.relative_to(SRC).with_suffix("").parts
        if rel == ("__init__",):
            continue  # the package's lazy public API
        me = "adrcs." + ".".join(p for p in rel if p != "__init__")
        for target in _imports(f):
            mine, theirs = _layer(me), _layer(target)
            top = me.split(".")[1]
            if any(top == a and target.startswith(f"adrcs.{b}") for a, b in ALLOWED):
                continue
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{me} -> {target}")
    assert not upward, "imports from a higher layer:\n" + "\n".join(sorted(set(upward)))
