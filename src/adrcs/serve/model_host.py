"""`ModelHost`: the models the service answers with, one champion per kind, swapped on promote/rollback.

Kinds: "wafer" (wafer-map classifier, `Pipeline`), "detect" (`DetectorPipeline`) and
"image_classify" (`ImageClassifierPipeline`). A version is registered in the store's model
registry under the name ``<kind>-<first 12 hex of the checkpoint's sha256>``, so the same run
folder always gets the same version. The loaded champion is cached and reloaded when the
registry's champion changes (checked on every `current` call: one indexed query).

Runtime (``adrcs serve --runtime``): "torch" serves wafer-map models as frozen TorchScript (the fused forward
pass + unknown scores); "onnx" / "onnx-int8" run their network in ONNX Runtime from the run folder's checked
``model.onnx`` / ``model.int8.onnx`` (`deploy.runtime`: exported first when missing or stale). Image classifiers
follow the same choice; detectors run their fp32 ``model.onnx`` under onnx and onnx-int8 (no INT8 detector graph
yet); `LoadedModel.runtime` says what a loaded champion runs on.

Products: each part type may have its own champion (`serve.products`); `current(kind, part_type)` answers with it,
else with the default champion of the kind.

Replicas: registry paths are resolved in the model store (`serve.model_store`), and a promote or rollback made
by another replica is picked up within `refresh_s` seconds (2 s by default).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adrcs.inference.onnx_runtime import check_runtime
from adrcs.monitoring.drift import Reference
from adrcs.serve.trust_answers import Answer, trust_answers
from adrcs.serve.trust_scoring import calibrate, fused_forward, scored_features, served_trust
from adrcs.tasks import task_names
from adrcs.serve.store.run_versions import register_run, version_name  # noqa: F401 (version_name: old import)
from adrcs.transforms.resize import resize_stack

KINDS = task_names()                 # every task is a kind of deployable model
IMAGE_KINDS = task_names(image=True)
RETRY_FAILED_S = 30.0  # a champion that failed to load is retried at most this often (loading is costly)
log = logging.getLogger("adrcs.serve")
Slot = tuple[str, "str | None"]  # (kind, product): one champion each


class ModelUnavailable(LookupError):
    """The champion of a kind is registered but cannot be loaded (missing or corrupted files).

    The message names the kind and version only, never a server path (the path and cause are logged)."""

    def __init__(self, kind: str, version: str) -> None:
        self.kind, self.version = kind, version
        super().__init__(f"the {kind} model {version} cannot be loaded; an admin can promote a working version")


def checkpoint_kind(model_dir: str | Path) -> str:
    """The kind (task name) of a run folder, from its checkpoint format; InputError when it has no model.ckpt.
    An unreadable checkpoint counts as "wafer": it is registered, and refused when loaded or promoted (409)."""
    from adrcs.tasks import checkpoint_format, task_of

    if checkpoint_format(model_dir) is None and (Path(model_dir) / "model.ckpt").is_file():
        return "wafer"
    return task_of(model_dir).name


def drift_reference(model_dir: str | Path, class_names: list[str]) -> Reference | None:
    """The class mix (and confidences, when saved) the model's validation predictions had.

    Read from ``drift_reference.json`` when the run wrote one, else from the validation confusion
    matrix in ``metrics.json`` (predicted counts), else from the checkpoint's training class counts.
    """
    p = Path(model_dir)
    p = p if p.is_dir() else p.parent
    ref_file = p / "drift_reference.json"
    if ref_file.is_file():
        try:
            return Reference.from_dict(json.loads(ref_file.read_text()))
        except (ValueError, KeyError, TypeError):
            pass
    metrics = p / "metrics.json"
    if metrics.is_file():
        try:
            val = json.loads(metrics.read_text()).get("val", {})
            cm = np.asarray(val.get("confusion_matrix"), dtype=float)
            names = val.get("class_names") or class_names
            if cm.ndim == 2 and cm.shape[1] == len(names) and cm.sum() > 0:
                return Reference.from_counts({c: int(n) for c, n in zip(names, cm.sum(axis=0))})
        except (ValueError, TypeError, json.JSONDecodeError):
            pass
    return None


@dataclass
class LoadedModel:
    """A champion ready to predict."""

    version: str
    kind: str
    path: str
    pipeline: Any
    class_names: list[str]
    multilabel: bool = False
    reference: Reference | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    trust: Any = None  # the pipeline's trust layer ready for serving (`trust_scoring.served_trust`), or None
    fused: Any = None  # forward pass + feature scores in one traced call (`trust_scoring.fused_forward`), or None
    part_type: str | None = None  # the product it is the champion of (None: the default champion)

    @property
    def runtime(self) -> str:
        """What the network runs on: torch, onnx or onnx-int8."""
        return str(getattr(self.pipeline, "runtime", "torch"))

    def __post_init__(self) -> None:
        if self.trust is None:
            self.trust = served_trust(self.pipeline)
        if self.trust is not None and self.fused is None and self.kind == "wafer":
            self.fused = fused_forward(self.pipeline, self.trust)

    def prepare(self, maps: list[np.ndarray]) -> np.ndarray:
        """Wafer maps of any sizes -> the model's input grid, uint8 (N, S, S). The service does this on the
        request's own thread: in the forward-pass thread each numpy call would wait for the GIL."""
        return resize_stack(maps, self.pipeline.input_size, self.pipeline.resize)

    def predict_prepared(self, stack: np.ndarray) -> np.ndarray:
        """Probabilities (N, K) for maps already `prepare`d for this model (calibrated when it has a trust layer)."""
        with self.lock:  # one forward pass at a time per model (torch threads are shared anyway)
            return self.pipeline.predict_tensor(torch.from_numpy(stack), batch_size=1024)

    def answer_prepared(self, stack: np.ndarray) -> tuple[np.ndarray, list[Answer]]:
        """`predict_prepared`'s probabilities and each map's trust answer (decision, unknown_score, set; see
        `trust_answers`), the whole batch at once. The answers are computed after the forward pass, outside the
        model's lock."""
        x = torch.from_numpy(stack)
        if self.fused is not None:  # one GIL hand-over for the forward pass and the unknown scores
            with self.lock, torch.inference_mode():
                outs = [self.fused(c) for c in ([x] if len(x) <= 1024 else x.split(1024))]
            both = outs[0][0].numpy() if len(outs) == 1 else np.concatenate([o[0].numpy() for o in outs])
            scores = scored_features(self.trust.unknown._feature_module.names,
                                     np.concatenate([o[1].numpy() for o in outs], axis=1))
            probs = calibrate(self.trust, both[:, :len(self.class_names)])  # `Pipeline.predict_outputs`' numbers
            return probs, trust_answers(self.trust, self.class_names, self.multilabel, probs, scores)
        with self.lock:
            if self.trust is not None and hasattr(self.pipeline, "predict_outputs"):
                probs, feats = self.pipeline.predict_outputs(x, batch_size=1024)
            else:  # no trust layer: the features are not needed
                probs, feats = self.pipeline.predict_tensor(x, batch_size=1024), None
        return probs, trust_answers(self.trust, self.class_names, self.multilabel, probs, feats)


def load_pipeline(kind: str, path: str | Path, device: str = "cpu", runtime: str = "torch") -> Any:
    """Load the saved model of a run folder of `kind`; wafer-map models are frozen for serving (the forward
    pass then runs without the GIL, so the event loop keeps serving), or with `runtime` onnx / onnx-int8 run
    in ONNX Runtime (exported first when missing or stale; session.run releases the GIL too)."""
    from adrcs.tasks import get_task

    if kind == "wafer" and runtime != "torch":
        from adrcs.deploy.runtime import load_wafer_model

        return load_wafer_model(path, runtime, say=log.info)
    if kind in ("detect", "image_classify") and runtime != "torch":  # detectors have no INT8 graph: fp32 ONNX
        from adrcs.deploy.runtime import load_image_model

        return load_image_model(path, kind, "onnx" if kind == "detect" else runtime, say=log.info)
    pipeline = get_task(kind).load(path, device)
    if kind == "wafer":
        pipeline.freeze()
    return pipeline


class ModelHost:
    """Registers run folders in `store` and serves each kind's champions: the default one and one per product
    (part type) that has its own (`serve.products`); a model of a product without one is served by the default."""

    def __init__(self, store: Any, device: str = "cpu", refresh_s: float = 2.0, runtime: str = "torch",
                 model_store: Any = None) -> None:
        from adrcs.serve.model_store import ModelStore

        self.store = store
        self.model_store = model_store if model_store is not None else ModelStore(None)  # resolves registry paths
        self.device = device
        self.runtime = check_runtime(runtime)  # wafer-map models: torch | onnx | onnx-int8 (see the module docs)
        self.refresh_s = float(refresh_s)  # how often the registry's champion is re-read (promotions elsewhere)
        # keyed by (kind, part type or None): loaded champions, failed loads (version, when), registry reads
        self._loaded: dict[Slot, LoadedModel] = {}
        self._failed: dict[Slot, tuple[str, float]] = {}
        self._checked: dict[Slot, float] = {}
        self._parts: dict[str, tuple[float, dict[str, str]]] = {}  # kind -> (read at, products with a champion)
        self._generation = 0
        self._staged: dict[str, LoadedModel] = {}  # loaded by `stage` before a promote / rollback
        self._lock = threading.Lock()

    def invalidate(self, kind: str | None = None) -> None:
        """Re-read the registry on the next `current` call (after a promote / rollback)."""
        self._generation += 1  # a `current` that read the registry before this may not mark it fresh
        for d in (self._checked, self._failed):  # a promote / rollback retries a model that failed to load
            for slot in [k for k in d if kind is None or k[0] == kind]:
                d.pop(slot, None)
        for k in [k for k in self._parts if kind is None or k == kind]:
            self._parts.pop(k, None)

    def _mark(self, slot: Slot, generation: int) -> None:
        if generation == self._generation:
            self._checked[slot] = time.monotonic()

    def register(self, model_dir: str | Path, *, actor: str = "system", parent: str | None = None,
                 metrics: dict[str, Any] | None = None, promote_if_first: bool = True,
                 part_type: str | None = None) -> str:
        """Add a run folder to the registry (idempotent); the first model of its kind (of product `part_type`)
        becomes champion."""
        model_dir = Path(model_dir).resolve()
        return register_run(self.store, model_dir, checkpoint_kind(model_dir), actor=actor, parent=parent,
                            metrics=metrics, promote_if_first=promote_if_first, model_store=self.model_store,
                            part_type=part_type)

    def _load(self, model: Any) -> LoadedModel:
        """Load registered version `model` (its path resolved in the model store); ModelUnavailable (logged with
        the path and the cause) when it cannot be loaded."""
        try:
            path = self.model_store.resolve(model.path)
            pipe = load_pipeline(model.kind, path, self.device, self.runtime)
        except Exception as e:  # noqa: BLE001 - any load failure: logged with the path, 503 / 409 to clients
            log.error("cannot load the %s model %s from %s: %s", model.kind, model.version, model.path, e)
            raise ModelUnavailable(model.kind, model.version) from None
        names = list(pipe.class_names)
        return LoadedModel(version=model.version, kind=model.kind, path=str(path), pipeline=pipe, class_names=names,
                           multilabel=bool(getattr(pipe, "multilabel", False)), reference=drift_reference(path, names),
                           part_type=getattr(model, "part_type", None))

    def stage(self, model: Any) -> None:
        """Load registered version `model` (a ``ModelVersion``) ahead of promoting it; the next `current` call
        that finds it champion uses this copy. ModelUnavailable (nothing changed) when it cannot be loaded."""
        self._staged[model.version] = self._load(model)

    def products(self, kind: str) -> dict[str, str]:
        """Part type -> champion version of the products of `kind` with their own champion (re-read at most every
        `refresh_s` seconds: one query for all products)."""
        hit = self._parts.get(kind)
        if hit is None or time.monotonic() - hit[0] >= self.refresh_s:
            hit = self._parts[kind] = (time.monotonic(), self.store.champion_parts(kind))
        return hit[1]

    def route(self, kind: str, part_type: str | None) -> str | None:
        """The product whose champion serves a map of `part_type`: itself if it has one, else None (default)."""
        from adrcs.serve.products import route

        return route(part_type, self.products(kind)) if part_type is not None else None

    def problems(self) -> dict[str, str]:
        """Kind (``kind@part`` for a product) -> reason for each deployed champion that cannot be loaded (loads it
        when needed)."""
        out = {}
        for kind in KINDS:
            for part in [None, *sorted(self.products(kind))]:
                try:
                    self.current(kind, part)
                except ModelUnavailable as e:
                    out[kind if part is None else f"{kind}@{part}"] = str(e)
                except LookupError:
                    pass  # nothing deployed of this kind
        return out

    def runtimes(self) -> dict[str, str]:
        """Kind -> the runtime its loaded default champion runs on (kinds not loaded yet are left out)."""
        return {slot[0]: m.runtime for slot, m in list(self._loaded.items()) if slot[1] is None}

    def kinds(self) -> list[str]:
        """Kinds that have a champion."""
        return [k for k in KINDS if self.store.champion(k) is not None]

    def current(self, kind: str, part_type: str | None = None) -> LoadedModel:
        """The champion serving `part_type` maps of `kind` (its product's, else the default one), loaded (reloaded
        when the registry's champion changed; the registry is read at most every `refresh_s` seconds, or at once
        after `invalidate`)."""
        slot = (kind, self.route(kind, part_type))
        loaded = self._loaded.get(slot)
        if loaded is not None and time.monotonic() - self._checked.get(slot, -1e9) < self.refresh_s:
            return loaded
        generation = self._generation
        champ = self.store.champion(kind, slot[1])
        if champ is None:
            self._mark(slot, generation)
            raise LookupError(f"no {kind} model is deployed")
        if loaded is not None and loaded.version == champ.version:
            self._mark(slot, generation)
            return loaded
        with self._lock:
            champ = self.store.champion(kind, slot[1])  # again under the lock: concurrent promotes load the last one
            if champ is None:
                raise LookupError(f"no {kind} model is deployed")
            loaded = self._loaded.get(slot)
            staged = self._staged.pop(champ.version, None)
            if staged is not None and (loaded is None or loaded.version != champ.version):
                self._loaded[slot] = loaded = staged
                self._staged.clear()
            if loaded is None or loaded.version != champ.version:
                failed = self._failed.get(slot)
                if failed is not None and failed[0] == champ.version and time.monotonic() - failed[1] < RETRY_FAILED_S:
                    raise ModelUnavailable(kind, champ.version)
                try:
                    loaded = self._load(champ)
                except ModelUnavailable:
                    self._failed[slot] = (champ.version, time.monotonic())
                    self._loaded.pop(slot, None)  # never keep answering with a model that is no longer champion
                    raise
                self._failed.pop(slot, None)
                self._loaded[slot] = loaded
            self._mark(slot, generation)
        return loaded
