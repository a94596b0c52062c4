"""Run configuration: defaults, small YAML files under `configs/`, command-line overrides."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from adrcs.errors import InputError

DEFAULTS: dict[str, Any] = {
    "task": "wafer",           # wafer (wafer-map classification) | detect (boxes on images) | image_classify
    "model": "ffn",            # a name from adrcs.models.list_models()
    "model_args": {},          # keyword arguments of the model constructor (width, dropout, ...)
    "input_size": 48,          # maps are resized to input_size x input_size (see resize)
    "resize": "nearest",       # nearest | failmax (a failing die anywhere in a cell marks it: dense products)
    "multilabel": "auto",      # auto: from the data (MixedWM38 -> multi-label)
    "epochs": 30,
    "batch_size": 256,
    "optimizer": "adamw",      # adamw | adam | sgd
    "lr": 3.0e-3,              # peak learning rate of the one-cycle schedule
    "weight_decay": 1.0e-4,
    "scheduler": "onecycle",   # onecycle | cosine | none
    "imbalance": "sqrt_weights",  # none | weights | sqrt_weights | power | sampler
    "imbalance_power": 0.25,   # with imbalance=power: class weight = count ** -imbalance_power
    "balance": "none",         # none | oversample | cae | gan: add maps to classes below balance_target
    "balance_target": 0,       # maps per class after balancing; 0 = the second-largest class count
    "synth_model": "",         # folder of a fitted synthesizer (`adrcs synth fit`) to use; "" = fit one
    "synth_args": {},          # options of the synthesizer fitted for balancing (size, iterations, ...)
    "synth_filter": "",        # run folder of a classifier trained on the same real training maps: keep only
                               # synthetic maps it assigns to their class ("" = keep all)
    "synth_filter_threshold": 0.5,
    "init": None,              # folder written by `adrcs pretrain`: start from its encoder (the head stays fresh)
    "semi_supervised": "auto",  # auto (the benchmark's best for --unlabeled maps) | none | fixmatch | distill
                               # (distill: the distill_from teachers label the unlabelled maps for the student)
    "semi_args": {},           # fixmatch: threshold, mu, lambda_u, dist_align, ema, p_fail, p_drop, cutout
    "distill_from": [],        # trained run folders (teachers): the model also learns their mean 8-view probabilities
    "distill_args": {},        # alpha (weight of the teachers' term, 0.7), temperature (2.0)
    "features": "none",        # none | sinogram: maps -> SBAE -> Radon -> selected 1-D features -> a 1-D model
    "encoder": "sbae",         # sinogram encoder: sbae | cae (same net, no sparsity term) | none (one-hot map)
    "sbae_args": {},           # SBAE options: channels, hidden, sparsity, gamma, weight_decay, steps, batch_size, lr
    "radon_angles": 0,         # projection angles over [0, 180); 0 = the encoded map's side
    "selector": "erd",         # feature search: erd | rd | ga | pso | gwo | sca | eo | none (keep all)
    "selector_args": {},       # population, iterations, w, k, threshold, algorithm_args
    "select_samples": 3000,    # training maps the search's KNN fitness sees (capped per class)
    "feature_cache": "auto",   # fitted encoder/selection cache: auto ($ADRCS_CACHE_DIR or ~/.cache/adrcs) | none | DIR
    "detector": "fcos_r18_slim",  # task=detect: a name from adrcs.models.detection.list_detectors()
    "detector_args": {},       # detector options (width_mult, fpn_channels, anchor_sizes, ...)
    "use_template": "auto",    # images: add template + |test - template| channels (auto: when every image has one)
    "image_mode": "L",         # images: L (grey) | RGB
    "train_crop": None,        # detection: train on random square windows of this side (null: whole images)
    "paste_defects": "none",   # detection: none | gan (conditional GAN defects pasted into defect-free regions)
    "paste_args": {},          # probability, max_per_image, patch, margin, from (a fitted GAN), iterations, ...
    "score_threshold": 0.5,    # detection: boxes below this score are dropped for precision/recall/F1 and predict
    "epoch_size": 0,           # maps drawn per training epoch; 0 = one pass over the training set
    "label_smoothing": 0.0,
    "augment": "dihedral",     # none | dihedral (random rot90 + flip per map) | flips (images: flips, shifts, brightness)
    "tta": False,              # average the 8 dihedral views at evaluate/predict time
    "early_stopping_patience": 10,  # epochs without val macro-F1 improvement (0 = off)
    "val_fraction": 0.1,       # stratified hold-out from train when no --val is given
    "calibrate": True,         # split val into select (early stopping, temperature) and calib (sets, unknown)
    "calib_fraction": 0.5,     # share of the validation maps in the calib split (stratified, by seed)
    "alpha": 0.05,             # prediction sets cover the true class with probability >= 1 - alpha
    "class_conditional": True,  # one conformal quantile per class: every class covered (false: overall only)
    "unknown": "ensemble",     # unknown-pattern score: ensemble (mahalanobis + knn + doubt) | mahalanobis | knn | none
    "unknown_false_alarm": 0.05,  # share of known maps (calib) flagged unknown
    "seed": 0,
    "device": "auto",          # auto | cpu | gpu
    "devices": 1,              # processes (CPU) or GPUs per machine; devices x num_nodes > 1 trains with DDP
    "num_nodes": 1,            # machines taking part in the run (each starts `adrcs train`; see README)
    "strategy": "auto",        # auto (ddp for several processes) | ddp | ddp_spawn | ddp_fork | ... (STRATEGIES)
    "precision": "32-true",    # 32-true | bf16-mixed | 16-mixed
    "num_workers": 0,
    "eval_batch_size": 1024,
    "progress": True,
}


# Numeric keys that also take a word (YAML accepts it as a string; the CLI must too).
WORD_VALUES: dict[str, tuple[str, ...]] = {"score_threshold": ("auto",)}


def _coerce(key: str, value: Any) -> Any:
    """Give an override string the type of the default it replaces."""
    default = DEFAULTS.get(key)
    if not isinstance(value, str) or isinstance(default, str):
        return value
    if value.strip().lower() in WORD_VALUES.get(key, ()):
        return value.strip().lower()
    if default is None:  # a key off by default (train_crop: null): read the value as YAML would
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    try:
        if isinstance(default, bool):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, dict):
            parsed = yaml.safe_load(value)
            if not isinstance(parsed, dict):
                raise ValueError
            return parsed
    except ValueError:
        raise InputError(None, f"--{key.replace('_', '-')}: cannot read {value!r} as {type(default).__name__}")
    return value


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file holding a mapping; InputError naming the file when missing or malformed."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "config file not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise InputError(p, f"not valid YAML ({str(e).splitlines()[0]})")
    if not isinstance(data, dict):
        raise InputError(p, "config must be a mapping of keys to values")
    return data


# Where an image task's sane value differs from the wafer-map default (used when neither the YAML nor a
# flag sets the key: `--task detect` alone trains at 640 px, batch 4, not at 48 px, batch 256).
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "detect": {"input_size": 640, "batch_size": 4, "eval_batch_size": 4, "lr": 1.0e-3, "scheduler": "cosine",
               "augment": "flips", "val_fraction": 0.2},
    "image_classify": {"input_size": 256, "batch_size": 32, "eval_batch_size": 64, "augment": "flips",
                       "val_fraction": 0.2},
}


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults (with the task's own, see `TASK_DEFAULTS`), updated by the YAML file at `path`, updated by
    `overrides` (None values ignored)."""
    data = read_yaml_mapping(Path(path)) if path is not None else {}
    task = (overrides or {}).get("task") or data.get("task") or DEFAULTS["task"]
    cfg = dict(DEFAULTS, **TASK_DEFAULTS.get(str(task), {}))
    cfg["model_args"] = {}
    cfg["synth_args"] = {}
    cfg["sbae_args"] = {}
    cfg["selector_args"] = {}
    cfg["detector_args"] = {}
    cfg["paste_args"] = {}
    cfg["semi_args"] = {}
    cfg["distill_from"] = []
    cfg["distill_args"] = {}
    if path is not None:
        p = Path(path)
        unknown = sorted(set(data) - set(DEFAULTS))
        if unknown:
            raise InputError(p, f"unknown config keys {unknown}; known keys: {sorted(DEFAULTS)}")
        cfg.update(data)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in DEFAULTS:
            raise InputError(None, f"unknown option --{key.replace('_', '-')}; config keys: {sorted(DEFAULTS)}")
        cfg[key] = _coerce(key, value)
    _fit_model_args(cfg, data, overrides or {})
    validate(cfg)
    return cfg


def _fit_model_args(cfg: dict[str, Any], data: dict[str, Any], overrides: dict[str, Any]) -> None:
    """`--model X` over a config written for another network: keep only the config's model_args that X takes
    (images_classify.yaml's ``hidden`` is an ``ffn`` option; ``--model cnn`` must not fail on it). model_args
    given on the command line are kept as they are, so a typo there is still an error."""
    if overrides.get("model") is None or overrides.get("model_args") is not None:
        return
    if overrides["model"] == data.get("model", DEFAULTS["model"]):
        return
    from adrcs.models import model_arg_names

    names = model_arg_names(str(cfg["model"]))
    if names is not None:
        cfg["model_args"] = {k: v for k, v in dict(cfg["model_args"] or {}).items() if k in names}


# Ranges of numeric keys: (low, high, low inclusive); None = unbounded.
RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "epochs": (1, None, True), "batch_size": (1, None, True), "lr": (0, None, False),
    "weight_decay": (0, None, True), "imbalance_power": (0, None, True), "balance_target": (0, None, True),
    "synth_filter_threshold": (0, 1, True), "radon_angles": (0, None, True), "select_samples": (1, None, True),
    "epoch_size": (0, None, True), "label_smoothing": (0, 1, True), "early_stopping_patience": (0, None, True),
    "val_fraction": (0, 1, False), "devices": (1, None, True), "num_nodes": (1, None, True),
    "num_workers": (0, None, True),
    "eval_batch_size": (1, None, True), "calib_fraction": (0, 1, False), "alpha": (0, 1, False),
    "unknown_false_alarm": (0, 1, False),
}


def _key_text(key: str) -> str:
    return f"{key} (config key or --{key.replace('_', '-')})"


def check_types(cfg: dict[str, Any]) -> None:
    """Every key whose default is a number, flag or mapping holds one of that type, in its range; one
    line naming the key and the wrong value otherwise (YAML `epochs: ten`, `--lr -5`)."""
    for key, default in DEFAULTS.items():
        value = cfg.get(key)
        if key in WORD_VALUES and isinstance(value, str) and value.lower() in WORD_VALUES[key]:
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
            want = "true or false"
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
            want = "an integer"
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
            want = "a number" + (f" or {' / '.join(WORD_VALUES[key])}" if key in WORD_VALUES else "")
        elif isinstance(default, dict):
            ok, want = isinstance(value, dict), "a mapping (key: value, ...)"
        else:
            continue
        if not ok:
            raise InputError(None, f"{_key_text(key)}: {value!r} is not {want}")
        low, high, inclusive = RANGES.get(key, (None, None, True))
        if low is not None and (value < low or (value == low and not inclusive)):
            raise InputError(None, f"{_key_text(key)}: {value!r} must be {'>=' if inclusive else '>'} {low}")
        if high is not None and value > high:
            raise InputError(None, f"{_key_text(key)}: {value!r} must be <= {high}")


def check_device(device: str) -> None:
    """`--device gpu/cuda/mps` on a machine without one: one line before anything is written."""
    import torch

    if device in ("gpu", "cuda") and not torch.cuda.is_available():
        raise InputError(None, f"--device {device}: no CUDA GPU on this machine; use --device auto or cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise InputError(None, "--device mps: Apple MPS is not available here; use --device auto or cpu")


# Lightning strategies `adrcs train --strategy` takes (DDP launches); "auto" is ddp for several processes.
STRATEGIES = ("auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook", "ddp_find_unused_parameters_true",
              "ddp_spawn_find_unused_parameters_true")


def check_distributed(cfg: dict[str, Any]) -> None:
    """`strategy` is one the trainer knows; detection trains in one process (one line otherwise)."""
    if cfg["strategy"] not in STRATEGIES:
        raise InputError(None, f"{_key_text('strategy')}: {cfg['strategy']!r} is not one of {list(STRATEGIES)}")
    if cfg["task"] == "detect" and int(cfg["devices"]) * int(cfg["num_nodes"]) > 1:
        raise InputError(None, "detection trains in one process: use devices 1 and num_nodes 1")


def validate(cfg: dict[str, Any]) -> None:
    """Raise InputError on values that would only fail deep inside training."""
    from adrcs.models import list_models

    check_types(cfg)

    choices = {
        "imbalance": ("none", "weights", "sqrt_weights", "power", "sampler"),
        "augment": ("none", "dihedral", "flips"),
        "scheduler": ("onecycle", "cosine", "none"),
        "optimizer": ("adamw", "adam", "sgd"),
        "device": ("auto", "cpu", "gpu", "cuda", "mps"),
        "balance": ("none", "oversample", "cae", "gan"),
        "features": ("none", "sinogram"),
        "encoder": ("sbae", "cae", "none"),
        "selector": ("erd", "rd", "ga", "pso", "gwo", "sca", "eo", "none"),
        "image_mode": ("L", "RGB"),
        "resize": ("nearest", "failmax"),
        "unknown": ("ensemble", "mahalanobis", "knn", "none"),
        "semi_supervised": ("auto", "none", "fixmatch", "distill"),
    }
    for key, allowed in choices.items():
        if cfg[key] not in allowed:
            raise InputError(None, f"config {key}={cfg[key]!r} is not one of {list(allowed)}")
    check_device(cfg["device"])
    check_distributed(cfg)
    if cfg.get("init") is not None:  # a folder; `--init` passes a Path
        if not isinstance(cfg["init"], (str, Path)):
            raise InputError(None, f"init (config key or --init): {cfg['init']!r} is not a folder name")
        cfg["init"] = str(cfg["init"])
    check_distill(cfg)
    if isinstance(cfg["use_template"], str):
        flag = cfg["use_template"].lower()
        if flag not in ("auto", "true", "false", "yes", "no", "1", "0", "on", "off"):
            raise InputError(None, f"config use_template={cfg['use_template']!r} is not one of auto, true, false")
        cfg["use_template"] = "auto" if flag == "auto" else flag in ("true", "yes", "1", "on")
    if cfg["task"] == "detect":
        from adrcs.models.detection import list_detectors

        if cfg["detector"] not in list_detectors():
            raise InputError(None, f"unknown detector {cfg['detector']!r}; known: {list_detectors()}")
        if int(cfg["input_size"]) < 32 or int(cfg["epochs"]) < 1 or int(cfg["batch_size"]) < 1:
            raise InputError(None, "detection needs input_size >= 32, epochs >= 1 and batch_size >= 1")
        if str(cfg.get("paste_defects")).lower() not in ("none", "gan", "false", "off"):
            raise InputError(None, f"paste_defects must be 'gan' or 'none' (got {cfg['paste_defects']!r})")
        crop = cfg.get("train_crop")
        if crop is not None and (not isinstance(crop, int) or not 32 <= crop):
            raise InputError(None, f"train_crop must be an integer >= 32 or null (got {crop!r})")
        if cfg["optimizer"] not in ("adamw", "sgd"):
            raise InputError(None, f"detection trains with optimizer adamw or sgd (got {cfg['optimizer']!r})")
        return
    if cfg["model"] not in list_models():
        raise InputError(None, f"unknown model {cfg['model']!r}; known models: {list_models()}")
    if cfg["features"] == "none" and cfg["model"] not in list_models("map"):
        raise InputError(None, f"model {cfg['model']!r} classifies 1-D feature vectors, not wafer maps; "
                               f"wafer-map models: {list_models('map')} (or set features: sinogram)")
    if cfg["features"] == "sinogram":
        if cfg["model"] not in list_models("sequence"):
            raise InputError(None, f"features=sinogram needs a 1-D model, one of {list_models('sequence')} "
                                   f"(got {cfg['model']!r})")
        if int(cfg["input_size"]) < 8 or int(cfg["input_size"]) % 2:
            raise InputError(None, "input_size must be even and >= 8 for the sinogram pipeline "
                                   f"(got {cfg['input_size']})")
    elif int(cfg["input_size"]) < 8 or int(cfg["input_size"]) % 8:
        raise InputError(None, f"input_size must be a multiple of 8 and >= 8 (got {cfg['input_size']})")
    if int(cfg["epochs"]) < 1 or int(cfg["batch_size"]) < 1:
        raise InputError(None, "epochs and batch_size must be >= 1")
    if int(cfg["balance_target"]) < 0 or int(cfg["epoch_size"]) < 0:
        raise InputError(None, "balance_target and epoch_size must be >= 0")


def check_distill(cfg: dict[str, Any]) -> None:
    """distill_from: a list of folder names (one name is taken as a list); distill_args: alpha in [0, 1],
    temperature > 0. Turned into an InputError naming the key."""
    teachers = cfg.get("distill_from") or []
    if isinstance(teachers, (str, Path)):
        teachers = [teachers]
    if not isinstance(teachers, (list, tuple)) or not all(isinstance(t, (str, Path)) for t in teachers):
        raise InputError(None, f"distill_from (config key or --teacher): {teachers!r} is not a list of run folders")
    cfg["distill_from"] = [str(t) for t in teachers]
    args = cfg.get("distill_args") or {}
    if not isinstance(args, dict) or set(args) - {"alpha", "temperature"}:
        raise InputError(None, f"distill_args: {args!r} takes only alpha and temperature")
    try:
        alpha, temp = float(args.get("alpha", 0.5)), float(args.get("temperature", 1.0))
    except (TypeError, ValueError):
        raise InputError(None, f"distill_args: alpha and temperature must be numbers (got {args!r})")
    if not (0.0 <= alpha <= 1.0 and temp > 0):
        raise InputError(None, f"distill_args: alpha must be in [0, 1] and temperature > 0 (got {args!r})")
    if teachers and cfg.get("semi_supervised") == "fixmatch":
        raise InputError(None, "distill_from and semi_supervised: fixmatch cannot be combined (distil from "
                               "teachers trained with fixmatch instead)")


# Keys that only some tasks read; every other key of DEFAULTS is common to all tasks.
_WAFER_ONLY = ("multilabel", "init", "semi_supervised", "semi_args", "distill_from", "distill_args", "balance", "balance_target", "synth_model",
               "synth_args", "synth_filter",
               "synth_filter_threshold", "features", "encoder", "sbae_args", "radon_angles", "selector",
               "selector_args", "select_samples", "feature_cache", "resize")
_IMAGE = ("use_template", "image_mode")
_TRUST = ("calibrate", "calib_fraction", "alpha", "class_conditional", "unknown", "unknown_false_alarm")
_DETECT_ONLY = ("detector", "detector_args", "train_crop", "paste_defects", "paste_args", "score_threshold")
TASK_KEYS: dict[str, tuple[str, ...]] = {
    "wafer": _WAFER_ONLY + _TRUST + ("model", "model_args", "imbalance", "imbalance_power", "epoch_size",
                                     "label_smoothing", "tta"),
    "detect": _IMAGE + _DETECT_ONLY,
    "image_classify": _IMAGE + _TRUST + ("model", "model_args", "imbalance", "imbalance_power", "epoch_size",
                                         "label_smoothing", "tta"),
}


def task_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """`cfg` without the keys that only other tasks read (keys outside DEFAULTS, like data paths, stay)."""
    task = cfg.get("task")
    if task not in TASK_KEYS:
        return dict(cfg)
    foreign = {k for t, keys in TASK_KEYS.items() if t != task for k in keys} - set(TASK_KEYS[task])
    return {k: v for k, v in cfg.items() if k not in foreign}


def save_config(cfg: dict[str, Any], path: str | Path) -> None:
    """Write the resolved config of a run (its task's keys only), so the run can be repeated exactly."""
    Path(path).write_text(yaml.safe_dump(task_config(cfg), sort_keys=False))
