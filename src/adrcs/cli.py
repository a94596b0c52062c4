"""`adrcs` command line: train, evaluate, predict, info, convert, ... (thin wrappers over `adrcs.api`)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from adrcs.errors import InputError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="ADRCS: automated defect recognition and classification for wafer maps.")
console = Console(stderr=False, width=None if sys.stdout.isatty() else 120)

# Options that take several values after one flag (`--train a.pkl b.pkl`).
MULTI_VALUE_OPTIONS = ("--train", "--val", "--data")
# How data files are read: every verb that reads them takes these two options.
TRUST_PICKLE = typer.Option(False, "--trust-pickle", help="Unpickle anything in pickle files (they can run "
                            "code): only for files you trust. Default: only wafer-map data classes.")
MAX_UNCOMPRESSED_MB = typer.Option(None, "--max-uncompressed-mb", help="Largest size a data file may expand "
                                   "to when read (default 4096).")


def _reading(trust_pickle: bool, max_uncompressed_mb: Optional[float]) -> dict:
    """The `trust_pickle` / `limits` keywords of the API functions that read data files."""
    from adrcs.data.limits import InputLimits

    return {"trust_pickle": trust_pickle, "limits": InputLimits.from_cli(max_uncompressed_mb)}


def expand_multi_value(argv: list[str]) -> list[str]:
    """Rewrite `--train a b --val c` as `--train a --train b --val c` for click."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        out.append(tok)
        if tok in MULTI_VALUE_OPTIONS:
            j = i + 1
            first = True
            while j < len(argv) and not argv[j].startswith("-"):
                if not first:
                    out.append(tok)
                out.append(argv[j])
                first = False
                j += 1
            i = j
            continue
        i += 1
    return out


def _say(msg: str) -> None:
    console.print(msg, highlight=False, markup=False)


def _extra_overrides(args: list[str]) -> dict[str, str]:
    """`--key value` / `--key=value` pairs left over by click -> config overrides."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        tok = args[i]
        if not tok.startswith("--"):
            raise InputError(None, f"unexpected argument {tok!r}")
        key = tok[2:]
        if "=" in key:
            key, value = key.split("=", 1)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            value = args[i + 1]
            i += 1
        else:
            value = "true"
        out[key.replace("-", "_")] = value
        i += 1
    return out


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (configs/*.yaml)."),
    train_paths: Optional[List[Path]] = typer.Option(None, "--train", help="Training file(s): --train a.pkl b.pkl"),
    data: Optional[List[Path]] = typer.Option(
        None, "--data", help="Training data (same as --train); for images: a DeepPCB list file, a VOC root "
                             "or a folder of class folders."),
    images: Optional[Path] = typer.Option(None, "--images", help="Pascal VOC: the images folder."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Pascal VOC: the XML annotations folder."),
    val_paths: Optional[List[Path]] = typer.Option(
        None, "--val", help="Validation file(s); default: a stratified hold-out of train."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write."),
    epochs: Optional[int] = typer.Option(None, help="Override config epochs."),
    device: Optional[str] = typer.Option(None, help="auto | cpu | gpu"),
    model: Optional[str] = typer.Option(None, help="Override config model (ffn, cnn)."),
    input_size: Optional[int] = typer.Option(None, help="Override config input_size."),
    batch_size: Optional[int] = typer.Option(None, help="Override config batch_size."),
    seed: Optional[int] = typer.Option(None, help="Override config seed."),
    balance: Optional[str] = typer.Option(
        None, help="none | oversample | cae | gan: fill classes up to --balance-target."),
    trust_pickle: bool = TRUST_PICKLE, max_uncompressed_mb: Optional[float] = MAX_UNCOMPRESSED_MB,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run already in --out."),
) -> None:
    """Train a classifier; any other config key can be given as --key value."""
    if not overwrite and (out / "model.ckpt").exists():
        raise InputError(out, "holds a trained run already (model.ckpt); pass --overwrite to replace it "
                              "(a service may be serving it) or choose another --out")
    from adrcs.config import load_config
    from adrcs.tasks import Request, get_task

    overrides = dict(epochs=epochs, device=device, model=model, input_size=input_size, batch_size=batch_size, seed=seed,
                     balance=balance)
    overrides.update(_extra_overrides(list(ctx.args)))
    cfg = load_config(config, overrides)
    paths = list(train_paths or []) + list(data or [])
    if not paths:
        raise InputError(None, "no training data: give --train FILE... (wafer maps) or --data PATH")
    task = get_task(cfg["task"])
    req = Request(data=paths, out=out, val=val_paths or None, images=images, annotations=annotations,
                  reading=_reading(trust_pickle, max_uncompressed_mb))
    task.check_image_request(req)
    task.train(cfg, req, _say)


def _run_on_model(verb: str, model: Path, **request: object) -> None:
    """`verb` (evaluate / predict) of the task that wrote `model`, after its request checks."""
    from adrcs.tasks import Request, task_of

    task = task_of(model)
    req = Request(**request)  # type: ignore[arg-type]
    task.check_image_request(req)
    getattr(task, verb)(model, req, _say)


@app.command()
def evaluate(
    model: Path = typer.Option(..., "--model", "-m", help="Run folder written by `adrcs train`."),
    data: List[Path] = typer.Option(..., "--data", "-d", help="Labeled file(s) to evaluate on."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report JSON (default MODEL/evaluation.json)."),
    tta: Optional[bool] = typer.Option(None, "--tta/--no-tta", help="Average the 8 rot/flip views."),
    images: Optional[Path] = typer.Option(None, "--images", help="Pascal VOC: the images folder."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Pascal VOC: the XML annotations folder."),
    trust_pickle: bool = TRUST_PICKLE, max_uncompressed_mb: Optional[float] = MAX_UNCOMPRESSED_MB,
) -> None:
    """Evaluate a trained model: metrics table, report JSON and plots."""
    _run_on_model("evaluate", model, data=list(data), out=out, images=images, annotations=annotations, tta=tta,
                  reading=_reading(trust_pickle, max_uncompressed_mb))


@app.command()
def predict(
    model: Path = typer.Option(..., "--model", "-m", help="Run folder written by `adrcs train`."),
    data: List[Path] = typer.Option(..., "--data", "-d", help="File(s) of maps, labeled or not."),
    out: Path = typer.Option(..., "--out", "-o", help="Predictions CSV (wafer maps, image classes) or, for a "
                                                     "detector, a folder (predictions.json/.csv, annotated/)."),
    tta: Optional[bool] = typer.Option(None, "--tta/--no-tta", help="Average the 8 rot/flip views."),
    threshold: Optional[float] = typer.Option(None, help="Multi-label decision threshold (default 0.5)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Pascal VOC: the images folder."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Pascal VOC: the XML annotations folder."),
    score_threshold: Optional[float] = typer.Option(None, help="Detection: minimum box score (default: the model's)."),
    trust_pickle: bool = TRUST_PICKLE, max_uncompressed_mb: Optional[float] = MAX_UNCOMPRESSED_MB,
) -> None:
    """Classify maps; one CSV row per map with the predicted class and probabilities."""
    _run_on_model("predict", model, data=list(data), out=out, images=images, annotations=annotations, tta=tta,
                  threshold=threshold, score_threshold=score_threshold,
                  reading=_reading(trust_pickle, max_uncompressed_mb))


@app.command()
def info(
    paths: List[Path] = typer.Argument(..., help="Data file(s)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    trust_pickle: bool = TRUST_PICKLE, max_uncompressed_mb: Optional[float] = MAX_UNCOMPRESSED_MB,
) -> None:
    """Show what the loader sees: maps per class, map sizes, unlabeled maps."""
    from rich.table import Table

    from adrcs.api import info as api_info

    result = api_info(paths, **_reading(trust_pickle, max_uncompressed_mb))
    if as_json:
        print(json.dumps(result, indent=2))
        return
    for path, s in result.items():
        t = Table(title=f"{path}: {s['total']} maps, {s['unlabeled']} unlabeled"
                        f"{' (multi-label)' if s.get('multilabel') else ''}")
        t.add_column("class" if not s.get("multilabel") else "label")
        t.add_column("maps", justify="right")
        for name, n in s["classes"].items():
            t.add_row(name, str(n))
        console.print(t)
        sizes = list(s["map_sizes"].items())
        shown = ", ".join(f"{k}: {v}" for k, v in sizes[:10])
        console.print(f"map sizes ({len(sizes)} distinct): {shown}{' ...' if len(sizes) > 10 else ''}",
                      highlight=False)


@app.command()
def convert(
    path: Path = typer.Argument(..., help="Wafer-map file in any supported format."),
    out: Path = typer.Argument(..., help="The .npz to write (loads without unpickling; uploadable)."),
    trust_pickle: bool = TRUST_PICKLE, max_uncompressed_mb: Optional[float] = MAX_UNCOMPRESSED_MB,
) -> None:
    """Rewrite a wafer-map file as a plain npz (maps, labels, lot, wafer) that needs no unpickling."""
    from adrcs.api import convert as api_convert

    api_convert(path, out, say=_say, **_reading(trust_pickle, max_uncompressed_mb))


synth_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Synthesize wafer maps for rare classes (CAE or conditional WGAN-GP).")
app.add_typer(synth_app, name="synth")


@synth_app.command("fit", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def synth_fit(
    ctx: typer.Context,
    method: Optional[str] = typer.Option(None, "--method", help="cae | gan"),
    train_paths: List[Path] = typer.Option(..., "--train", help="Training file(s) only; never validation data."),
    out: Path = typer.Option(..., "--out", "-o", help="Synthesizer folder to write."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML (configs/synth_*.yaml)."),
    size: Optional[int] = typer.Option(None, help="Map size the synthesizer works at (multiple of 8)."),
    seed: Optional[int] = typer.Option(None),
    device: Optional[str] = typer.Option(None, help="auto | cpu | gpu"),
    trust_pickle: bool = TRUST_PICKLE, max_uncompressed_mb: Optional[float] = MAX_UNCOMPRESSED_MB,
) -> None:
    """Fit a synthesizer; other options as --key value (e.g. --iterations 2000, --steps 500)."""
    from adrcs.api import synth_fit as api_synth_fit
    from adrcs.synth.fit_config import load_synth_config, parse_value

    extra = {k: parse_value(v) for k, v in _extra_overrides(list(ctx.args)).items()}
    scfg = load_synth_config(config, dict(method=method, size=size, seed=seed, device=device, **extra))
    api_synth_fit(scfg, train_paths, out, say=_say, **_reading(trust_pickle, max_uncompressed_mb))


@synth_app.command("sample")
def synth_sample(
    model: Path = typer.Option(..., "--model", "-m", help="Folder written by `adrcs synth fit`."),
    class_name: List[str] = typer.Option(..., "--class", help="Class to generate (repeatable), or 'all'."),
    n: int = typer.Option(500, "--n", help="Maps per class."),
    out: Path = typer.Option(..., "--out", "-o", help="Pickle to write (e.g. maps.pkl.xz); `adrcs info` reads it."),
    seed: int = typer.Option(0),
) -> None:
    """Generate maps of a class into a pickle in the processed WM-811K format."""
    from adrcs.api import synth_sample as api_synth_sample

    api_synth_sample(model, class_name, n, out, seed=seed, say=_say)


@synth_app.command("evaluate")
def synth_evaluate(
    model: Path = typer.Option(..., "--model", "-m", help="Folder written by `adrcs synth fit`."),
    classifier: Path = typer.Option(..., "--classifier", help="Run folder of a classifier trained on real maps."),
    data: List[Path] = typer.Option(..., "--data", "-d", help="Held-out real labeled maps (e.g. validation)."),
    out: Path = typer.Option(..., "--out", "-o", help="Report JSON; the PNG grid goes beside it."),
    n: int = typer.Option(500, "--n", help="Synthetic maps per class."),
    seed: int = typer.Option(0),
    trust_pickle: bool = TRUST_PICKLE, max_uncompressed_mb: Optional[float] = MAX_UNCOMPRESSED_MB,
) -> None:
    """Per-class FD / KID, classifier accuracy on synthetic maps, memorisation check, PNG grid."""
    from adrcs.api import synth_evaluate as api_synth_evaluate

    api_synth_evaluate(model, classifier, data, out, n=n, seed=seed, say=_say,
                       **_reading(trust_pickle, max_uncompressed_mb))


@app.command()
def serve(
    model: List[Path] = typer.Option([], "--model", "-m", help="Run folder(s) to register and deploy (first of "
                                                              "each kind becomes champion)."),
    db: str = typer.Option("sqlite:///adrcs.db", "--db", help="Results store: sqlite:///FILE or postgresql://..."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    batch_wait_ms: float = typer.Option(0.0, "--batch-wait-ms", help="Micro-batching: longest wait for others "
                                        "to join an idle forward pass (requests arriving during a pass always "
                                        "share the next one)."),
    batch_max: int = typer.Option(1024, "--batch-max", help="Micro-batching: most maps per forward pass."),
    low_confidence: float = typer.Option(0.7, "--low-confidence", help="Review-queue threshold."),
    max_request_mb: float = typer.Option(64.0, "--max-request-mb", help="Larger requests get 413."),
    drift_window: int = typer.Option(500, "--drift-window", help="Recent predictions compared with the reference."),
    drift_method: str = typer.Option("psi", "--drift-method", help="psi | chi2"),
    admin_token_file: Optional[Path] = typer.Option(None, "--admin-token-file", help="When the store has no "
                                                    "tokens yet, write a new admin token here (else it is printed)."),
    log_level: str = typer.Option("warning", "--log-level"),
    torch_threads: int = typer.Option(1, "--torch-threads", help="Intra-op threads per forward pass (1 keeps "
                                      "single-map latency low; more helps large requests on an idle machine)."),
    switch_interval_ms: float = typer.Option(1.0, "--switch-interval-ms", help="Python GIL switch interval: how "
                                             "long the forward-pass and store threads may wait for the event loop "
                                             "to hand over the GIL."),
    fast_path: bool = typer.Option(True, "--fast-path/--no-fast-path", help="Answer JSON wafer-map inspections "
                                   "on plain ASGI, skipping the FastAPI layers (same responses)."),
) -> None:
    """Run the inspection service (REST API under /v1, review page at /, docs at /docs)."""
    from adrcs.serve.app import ServiceConfig
    from adrcs.monitoring.drift import DriftConfig
    from adrcs.serve.launch import launch

    for flag, value in (("--max-request-mb", max_request_mb), ("--batch-max", batch_max), ("--port", port)):
        if not value > 0:
            raise InputError(None, f"{flag} must be > 0 (got {value})")
    cfg = ServiceConfig(db=db, models=[str(m) for m in model], batch_max=batch_max, batch_wait_ms=batch_wait_ms,
                        low_confidence=low_confidence, max_request_bytes=int(max_request_mb * 1024 * 1024),
                        drift=DriftConfig(window=drift_window, method=drift_method), fast_path=fast_path)
    launch(cfg, host=host, port=port, admin_token_file=admin_token_file, log_level=log_level,
           torch_threads=torch_threads, switch_interval_ms=switch_interval_ms, say=_say)


token_app = typer.Typer(add_completion=False, no_args_is_help=True, help="API tokens of the inspection service.")
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    name: str = typer.Option(..., "--name", help="Who holds it (shown as the reviewer)."),
    role: str = typer.Option(..., "--role", help="inspector | engineer | admin"),
    db: str = typer.Option("sqlite:///adrcs.db", "--db"),
) -> None:
    """Create a token and print it (only its hash is stored)."""
    from adrcs.serve.store import Store

    try:
        token = Store(db).create_token(name, role)
    except ValueError as e:
        raise InputError(None, str(e))
    print(token)


@token_app.command("revoke")
def token_revoke(name: str = typer.Option(..., "--name"), db: str = typer.Option("sqlite:///adrcs.db", "--db")) -> None:
    """Revoke a token by name."""
    from adrcs.serve.store import Store

    try:
        Store(db).revoke_token(name)
    except KeyError:
        raise InputError(None, f"no token named {name!r}")
    _say(f"revoked {name}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def adapt(
    ctx: typer.Context,
    db: str = typer.Option(..., "--db", help="The service's results store."),
    model: Path = typer.Option(..., "--model", "-m", help="Champion run folder to start from."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder for the challenger."),
    train: Optional[List[Path]] = typer.Option(None, "--train", help="Original training files (default: the "
                                                                     "champion's)."),
    val: Optional[List[Path]] = typer.Option(None, "--val", help="Validation files (default: the champion's)."),
    recall_margin: float = typer.Option(0.05, "--recall-margin", help="Largest allowed per-class recall drop."),
    audit_fraction: float = typer.Option(0.3, "--audit-fraction", help="Share of reviewed inspections kept for audit."),
    trust_pickle: bool = TRUST_PICKLE, max_uncompressed_mb: Optional[float] = MAX_UNCOMPRESSED_MB,
) -> None:
    """Retrain on original + reviewed data; promote the challenger only if it is not worse on the audit set.
    Config overrides for the challenger as --key value (e.g. --epochs 10)."""
    from adrcs.adapt import adapt as api_adapt
    from adrcs.serve.store import Store

    overrides = _extra_overrides(list(ctx.args))  # strings: load_config parses them as YAML values
    report = api_adapt(Store(db), model, out, original=train or None, val=val or None, overrides=overrides,
                       recall_margin=recall_margin, audit_fraction=audit_fraction, say=_say,
                       **_reading(trust_pickle, max_uncompressed_mb))
    _say(json.dumps({k: report[k] for k in ("challenger", "champion", "promoted", "n_pool", "n_audit")}))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: bad input -> one line on stderr, exit code 2."""
    argv = expand_multi_value(list(sys.argv[1:] if argv is None else argv))
    try:
        app(args=argv, prog_name="adrcs", standalone_mode=True)
    except InputError as e:
        print(f"adrcs: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("adrcs: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
