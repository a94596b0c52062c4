"""``--runtime onnx``: a wafer-map model run by ONNX Runtime from the run folder's checked ``model.onnx``.

`OnnxPredictor` has the interface `predict` / `evaluate` use of a `Pipeline` (``prepare``, ``predict_outputs``,
``predict_tensor``, ``predict_proba``, ``decide``, ``class_names``, ``multilabel``, ``trust``): the network's
forward pass runs in ONNX Runtime; everything around it is the checkpoint's own code (map resizing, the
sinogram feature step, the trust layer's temperature, sets and unknown score, TTA by the 8 dihedral views of
the die codes), so its answers equal PyTorch's within the export's checked tolerance. `deploy.runtime` loads
one for a run folder (exporting ``model.onnx`` first when it is missing or stale).

Threads: ``intra_op_num_threads`` = ``ADRCS_ONNX_THREADS`` when set, else ``torch.get_num_threads()`` (what
PyTorch uses in this process, so both runtimes compare at the same thread count; set it with
``OMP_NUM_THREADS`` / ``torch.set_num_threads``); ``inter_op_num_threads`` = 1 and sequential execution (the
graphs are a chain: no parallel branches worth a second pool).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adrcs.errors import InputError

RUNTIMES = ("torch", "onnx", "onnx-int8")  # onnx-int8: the run's model.int8.onnx (`adrcs export --int8`)
THREADS_ENV = "ADRCS_ONNX_THREADS"


def default_threads() -> int:
    """Intra-op threads for ONNX Runtime (see the module docs)."""
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise InputError(None, f"{THREADS_ENV} must be a whole number of threads (got {env!r})")
    return max(1, int(torch.get_num_threads()))


def make_session(path: str | Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for `path` with pinned thread counts and full graph optimisation."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = default_threads() if threads is None else int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def run_session(session: Any, input_name: str, x: np.ndarray, batch_size: int = 1024) -> list[np.ndarray]:
    """All outputs of `session` for `x`, run in chunks of `batch_size` and concatenated."""
    if len(x) == 0:
        shapes = [o.shape for o in session.get_outputs()]
        return [np.zeros((0, *[d if isinstance(d, int) else 0 for d in s[1:]]), np.float32) for s in shapes]
    if len(x) <= batch_size:  # one call: no slicing or concatenation (the batch-1 path of the service)
        return session.run(None, {input_name: np.ascontiguousarray(x)})
    outs: list[list[np.ndarray]] = []
    for i in range(0, len(x), batch_size):
        res = session.run(None, {input_name: np.ascontiguousarray(x[i:i + batch_size])})
        outs = [[r] for r in res] if not outs else [o + [r] for o, r in zip(outs, res)]
    return [o[0] if len(o) == 1 else np.concatenate(o) for o in outs]


def _views(x: np.ndarray, tta: bool) -> list[np.ndarray]:
    """The 8 dihedral views of maps (N, S, S) as `transforms.dihedral` orders them (identity first)."""
    if not tta:
        return [x]
    out = []
    for k in range(8):
        v = np.rot90(x, k % 4, axes=(-2, -1))
        out.append(np.ascontiguousarray(v[..., ::-1] if k >= 4 else v))
    return out


class OnnxPredictor:
    """A wafer-map `Pipeline` whose network runs in ONNX Runtime (see the module docs)."""

    def __init__(self, base: Any, onnx_path: str | Path, threads: int | None = None, runtime: str = "onnx") -> None:
        self.base, self.runtime = base, runtime  # runtime: onnx | onnx-int8 (recorded in the outputs)
        self.onnx_path = Path(onnx_path)
        self.threads = default_threads() if threads is None else int(threads)
        self.session = make_session(self.onnx_path, self.threads)
        self.input_name = self.session.get_inputs()[0].name
        self.class_names, self.multilabel = list(base.class_names), bool(base.multilabel)
        self.trust, self.tta, self.input_size = base.trust, base.tta, base.input_size
        self.features, self.extra = base.features, base.extra
        self.resize = getattr(base, "resize", "nearest")  # how the service prepares maps on its own threads

    def describe(self) -> str:
        """One line for the output summary."""
        return (f"runtime: {self.runtime} ({self.onnx_path.name}, ONNX Runtime CPU, {self.threads} intra-op "
                f"thread(s))")

    # ---------------------------------------------------------------- the Pipeline interface
    def prepare(self, maps: list[np.ndarray]) -> torch.Tensor:
        """Die-code maps of any sizes -> uint8 tensor (N, S, S), as the checkpoint prepares them."""
        return self.base.prepare(maps)

    def predict_outputs(self, x: torch.Tensor | np.ndarray, batch_size: int = 1024, tta: bool | None = None,
                        calibrated: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities (N, K) (temperature-scaled when the model has a trust layer and `calibrated`) and the
        network's features (N, F) (means over the 8 views with TTA) for prepared maps (N, S, S)."""
        tta = self.tta if tta is None else tta
        maps = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        views = _views(maps, bool(tta))
        outs = [run_session(self.session, self.input_name,
                            self.features.transform(v) if self.features is not None else v, batch_size)[1:]
                for v in views]
        if len(outs) == 1:
            probs, feats = outs[0]
        else:
            probs = np.mean([o[0] for o in outs], axis=0).astype(np.float32)
            feats = np.mean([o[1] for o in outs], axis=0).astype(np.float32)
        if calibrated and self.trust is not None:
            probs = self.trust.calibrate(probs)
        return probs, feats

    def predict_tensor(self, x: torch.Tensor, batch_size: int = 1024, tta: bool | None = None,
                       calibrated: bool = True) -> np.ndarray:
        return self.predict_outputs(x, batch_size, tta, calibrated)[0]

    def predict_proba(self, ds: Any, batch_size: int = 1024, tta: bool | None = None) -> np.ndarray:
        """Probabilities for every map of a `WaferMapSet` or a list of maps."""
        maps = ds.maps if hasattr(ds, "maps") else ds
        return self.predict_tensor(self.prepare(maps), batch_size=batch_size, tta=tta)

    def decide(self, probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        from adrcs.inference.decisions import decide

        return decide(probs, self.multilabel, threshold)


def check_runtime(runtime: str | None) -> str:
    """`runtime` validated (default torch); one-line error otherwise."""
    runtime = "torch" if runtime is None else str(runtime).lower()
    if runtime not in RUNTIMES:
        raise InputError(None, f"--runtime must be {', '.join(RUNTIMES[:-1])} or {RUNTIMES[-1]} (got {runtime!r})")
    return runtime
