"""``adrcs predict --engine ray``: score many wafer-map files on Ray Data and write Parquet shards.

The pipeline: ``ray.data.from_items`` over the expanded file list (one item per file) -> `read_file_batch`
(Ray tasks: each file read with adrcs's own loader, so every fab format works; the columns of predict's CSV that
come from the maps alone (`api.map_rows`, `api.true_labels`) are taken there, and the maps are resized to the
model's input with its own resize rule, so they travel as one uint8 tensor column) -> `Scorer` (``map_batches``
with a callable class on an actor pool: one model per actor, ONNX Runtime by default where the run exports,
else PyTorch; the answer columns come from `api.answer_rows`, the code local ``predict`` uses) ->
``write_parquet`` (one shard per block, with predict's columns, written while the scoring goes on: the write tasks
ask for no CPU). Ray Data shows the progress.

Differences from the local CSV, by design: ``index`` numbers the maps within their source file (the local CSV
numbers them across all files; line rows up by ``source``, ``index``), and ``true`` is always present ("" for a
map without a label). Without ``address`` a local Ray is started on this machine only (no dashboard, node address
127.0.0.1, logs in a temp folder); with one (``auto`` or ``HOST:PORT``) every node must see the data files and
the run folder at the same paths.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from adrcs.errors import InputError

Printer = Callable[[str], None]
RAY_HINT = "pip install 'adrcs[ray]'"
MARK = "[adrcs-input-error] "   # how a worker's one-line reading error reaches the driver
META = ("index", "source", "source_index", "lot", "wafer", "die_count", "fail_count", "yield")


class ReadFailure(RuntimeError):
    """A file a Ray worker could not read under ``on_error="stop"`` (its message is the one-line InputError)."""


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or a one-line InputError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data is a separate extra of ray
    except ImportError:
        raise InputError(None, f"--engine ray needs Ray Data, which is not installed: {RAY_HINT}") from None
    return ray


@dataclass(frozen=True)
class ReadSpec:
    """What a reading task needs: the reading options, the model's input size / resize rule and classes."""

    input_size: int
    resize: str
    class_names: list[str]
    reading: dict[str, Any] = field(default_factory=dict)   # trust_pickle, limits, fab, on_error
    labels: str | None = None                                # a lot,wafer,label CSV (single-label models)


def read_file_batch(batch: dict[str, np.ndarray], spec: ReadSpec) -> dict[str, np.ndarray]:
    """Ray task: the files of `batch` (column ``path``) -> one row per map: predict's map columns, ``true``
    and ``map`` (uint8 (N, S, S), resized as the model prepares maps)."""
    from adrcs.api import map_rows, true_labels
    from adrcs.data.loader import load
    from adrcs.transforms.resize import resize_stack

    reading = dict(spec.reading)
    on_error = reading.pop("on_error", "stop")
    frames, trues, maps = [], [], []
    for path in batch["path"]:
        try:
            ds = load(Path(str(path)), **reading)
            if spec.labels:
                from adrcs.data.wafer_ids import apply_labels

                ds, _ = apply_labels(ds, spec.labels, spec.class_names)
        except InputError as e:
            if on_error == "stop":
                raise ReadFailure(MARK + str(e)) from None
            continue  # skipped: the driver lists the files that gave no rows
        if not len(ds):
            continue
        frames.append(map_rows(ds))
        trues.extend(true_labels(ds) or [""] * len(ds))
        maps.append(resize_stack(ds.maps, spec.input_size, spec.resize))
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({c: [] for c in META})
    out = {c: _column(c, rows[c]) for c in META}
    out["true"] = np.asarray(trues, dtype=object)
    s = spec.input_size
    out["map"] = np.concatenate(maps) if maps else np.zeros((0, s, s), np.uint8)
    return out


def _column(name: str, values: pd.Series) -> np.ndarray:
    """One map column with the same type in every block (so all shards share one Parquet schema)."""
    if name in ("source", "lot", "wafer"):
        return np.asarray(["" if v is None else str(v) for v in values], dtype=object)
    if name == "yield":
        return pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    try:
        return values.to_numpy(np.int64)
    except (TypeError, ValueError):
        return pd.to_numeric(values, errors="coerce").to_numpy(np.float64)


class Scorer:
    """Ray actor (``map_batches`` callable class): one model per actor; a batch of read maps -> predict's rows."""

    def __init__(self, run_dir: str, runtime: str, tta: bool | None, threshold: float, alpha: float | None,
                 threads: int = 1) -> None:
        import torch

        from adrcs.deploy.runtime import load_wafer_model

        torch.set_num_threads(max(1, threads))   # ONNX Runtime follows torch's thread count
        self.model = load_wafer_model(run_dir, runtime, say=lambda s: None)
        self.tta, self.threshold, self.alpha = tta, threshold, alpha

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        import torch

        from adrcs.api import answer_rows

        maps = torch.from_numpy(np.require(batch["map"], np.uint8, ["C", "W"]))  # Arrow buffers are read-only
        probs, feats = self.model.predict_outputs(maps, tta=self.tta)
        rows = pd.DataFrame({c: batch[c] for c in META})
        return arrow_table(answer_rows(self.model, rows, probs, feats, self.threshold, self.alpha,
                                       list(batch["true"])))


def arrow_table(rows: pd.DataFrame) -> Any:
    """`rows` as an Arrow table whose column types depend on the columns' kinds only (integers int64, floats
    float64 with NaN kept, booleans, everything else text), so every shard has the same Parquet schema."""
    import pyarrow as pa

    arrays = {}
    for name in rows.columns:
        col = rows[name]
        kind = col.dtype.kind if isinstance(col.dtype, np.dtype) else "O"
        if kind in "iu":
            arrays[name] = pa.array(col.to_numpy(np.int64), pa.int64())
        elif kind == "f":
            arrays[name] = pa.array(col.to_numpy(np.float64), pa.float64(), from_pandas=False)
        elif kind == "b":
            arrays[name] = pa.array(col.to_numpy(bool), pa.bool_())
        else:
            arrays[name] = pa.array(["" if v is None else str(v) for v in col], pa.string())
    return pa.table(arrays)


def pick_runtime(run_dir: str | Path, runtime: str | None, say: Printer) -> tuple[str, Any]:
    """The runtime the actors use and the driver's copy of the model: `runtime` when given, else onnx where the
    run exports to ONNX (exported here once, not by every actor), else torch."""
    from adrcs.deploy.runtime import load_wafer_model
    from adrcs.inference.onnx_runtime import check_runtime

    if runtime not in (None, "auto"):
        runtime = check_runtime(runtime)
        return runtime, load_wafer_model(run_dir, runtime, say)
    try:
        return "onnx", load_wafer_model(run_dir, "onnx", say)
    except (ImportError, InputError, RuntimeError, ValueError) as e:
        say(f"runtime: torch (no ONNX model: {' '.join(str(e).split())[:120]})")
        return "torch", load_wafer_model(run_dir, "torch", say)


def start_ray(ray: Any, address: str | None, workers: int | None, say: Printer) -> tuple[int, str | None]:
    """Connect to the cluster at `address`, or start a local Ray (localhost only, no dashboard, logs in a temp
    folder). Returns the number of scoring actors and the temp folder to remove afterwards (local Ray)."""
    if ray.is_initialized():
        return workers or max(1, int(ray.cluster_resources().get("CPU", 1))), None
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=True)
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        say(f"ray: connected to {address}, {n} scoring actor(s)")
        return n, None
    n = workers or max(1, os.cpu_count() or 1)
    tmp = tempfile.mkdtemp(prefix="adrcs-ray-")
    ray.init(num_cpus=n, include_dashboard=False, _temp_dir=tmp, _node_ip_address="127.0.0.1",
             log_to_driver=True)
    say(f"ray: local, {n} worker(s) (one model and one thread each), logs in {tmp}")
    return n, tmp


def _input_error(e: BaseException) -> InputError | None:
    """The one-line reading error a worker raised (`ReadFailure`), found in a Ray exception, else None."""
    for line in str(e).splitlines():
        if MARK in line:
            return InputError(None, line.split(MARK, 1)[1].strip())
    return None


def check_out(out: Path) -> None:
    """`out` must be a folder for new shards (not a .csv file, not holding shards already)."""
    if out.suffix.lower() == ".csv" or (out.exists() and not out.is_dir()):
        raise InputError(out, "--engine ray writes a folder of Parquet shards: give --out DIR")
    if out.is_dir() and any(out.glob("*.parquet")):
        raise InputError(out, "holds Parquet shards already; choose another --out or remove them")


def predict_ray(model_dir: str | Path, data: Sequence[str | Path] | str | Path, out: str | Path,
                tta: bool | None = None, threshold: float = 0.5, say: Printer = print, *,
                trust_pickle: bool = False, limits: Any = None, fab: Any = None, on_error: str = "stop",
                labels: str | Path | None = None, alpha: float | None = None, runtime: str | None = None,
                address: str | None = None, workers: int | None = None, files_per_task: int = 1) -> dict[str, Any]:
    """`api.predict` on Ray Data: every map of `data` (files, folders, globs) classified into Parquet shards in the
    folder `out` (see the module docs). Returns a summary: maps, files, shards, runtime, workers, seconds."""
    import time

    from adrcs.api import say_predictions
    from adrcs.data.data_paths import expand_data_paths

    ray = require_ray()
    if workers is not None and workers < 1:
        raise InputError(None, f"--workers must be at least 1 (got {workers})")
    out = Path(out)
    check_out(out)
    paths = [data] if isinstance(data, (str, Path)) else list(data)
    files = [str(p) for p in expand_data_paths(paths)]
    runtime, model = pick_runtime(model_dir, runtime, say)
    if labels is not None and model.multilabel:
        raise InputError(labels, "--labels takes single labels; this is a multi-label model")
    spec = ReadSpec(input_size=int(model.input_size), resize=str(getattr(model, "resize", "nearest")),
                    class_names=list(model.class_names), labels=None if labels is None else str(labels),
                    reading={"trust_pickle": trust_pickle, "limits": limits, "fab": fab, "on_error": on_error})
    n_workers, tmp = start_ray(ray, address, workers, say)
    started = time.perf_counter()
    try:
        ds = ray.data.from_items([{"path": f} for f in files])
        ds = ds.map_batches(read_file_batch, batch_size=max(1, files_per_task), fn_kwargs={"spec": spec},
                            num_cpus=0.25, **_tasks(ray, n_workers))
        ds = ds.map_batches(Scorer, batch_size=1024, batch_format="numpy", num_cpus=0.75,
                            fn_constructor_kwargs={"run_dir": str(model_dir), "runtime": runtime, "tta": tta,
                                                   "threshold": threshold, "alpha": alpha},
                            **_actors(ray, n_workers))
        # the write tasks take no CPU of the budget: the reading tasks and scoring actors hold all of it, so
        # write tasks asking for a CPU only ran once every map was scored (all answers held in the object store)
        ds.write_parquet(str(out), ray_remote_args={"num_cpus": 0})
    except Exception as e:  # a worker's reading error comes back wrapped in Ray's exceptions
        err = _input_error(e)
        if err is None:
            raise
        raise err from None
    finally:
        if tmp is not None:
            ray.shutdown()
            shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - started
    return _summary(out, files, runtime, n_workers, seconds, say, say_predictions)


def _tasks(ray: Any, n: int) -> dict[str, Any]:
    """At most `n` reading tasks at once (``compute=TaskPoolStrategy`` on new Ray, ``concurrency`` before)."""
    if hasattr(ray.data, "TaskPoolStrategy"):
        return {"compute": ray.data.TaskPoolStrategy(size=n)}
    return {"concurrency": n}


def _actors(ray: Any, n: int) -> dict[str, Any]:
    """An actor pool of `n` scoring actors."""
    return {"compute": ray.data.ActorPoolStrategy(size=n)}


def _summary(out: Path, files: list[str], runtime: str, workers: int, seconds: float, say: Printer,
             say_predictions: Callable[..., None]) -> dict[str, Any]:
    """predict's closing lines from the written shards, the files that gave no rows, and the numbers."""
    import pyarrow.parquet as pq

    shards = sorted(out.glob("*.parquet"))
    cols = ["source", "predicted", "decision"]
    rows = (pd.concat([pq.read_table(s, columns=cols).to_pandas() for s in shards], ignore_index=True)
            if shards else pd.DataFrame({c: [] for c in cols}))
    say_predictions(rows, f"{out}/ ({len(shards)} Parquet shard(s))", f"{runtime}, ray x{workers}", say)
    missing = sorted(set(files) - set(rows["source"].astype(str)))
    if missing:
        say(f"{len(missing)} file(s) gave no maps (empty, or unreadable under --on-error skip): "
            + ", ".join(Path(m).name for m in missing[:20]) + (" ..." if len(missing) > 20 else ""))
    rate = len(rows) / seconds if seconds > 0 else float("nan")
    say(f"ray: {len(rows)} maps from {len(files)} file(s) in {seconds:.1f}s ({rate:.0f} maps/s, {workers} worker(s))")
    return {"maps": len(rows), "files": len(files), "shards": len(shards), "runtime": runtime, "workers": workers,
            "seconds": seconds, "maps_per_s": rate, "no_maps": missing}
