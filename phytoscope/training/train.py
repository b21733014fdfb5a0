"""Transfer learning of the genus classifier: frozen-backbone stage, then fine-tuning.

The long work is one plain function, :func:`train`, taking a progress callback and a cancel
check, so the CLI and a GUI worker call the same code and tests run it without threads.

Stages
------
1. *head*: the backbone is frozen, so its features of the (augmented) training images are
   computed once and a Dense head is trained on them in seconds: the cheapest way to a good
   model on two CPU cores.
2. *fine-tune*: the upper backbone blocks are unfrozen (batch-norm statistics stay frozen)
   and the whole network trains a few epochs on freshly augmented images at a small
   learning rate. The weights with the best validation accuracy are kept.

After every epoch a checkpoint and ``state.json`` are written, so ``--resume`` continues an
interrupted run from the last finished epoch instead of starting over.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from phytoscope.errors import Cancelled, ConfigError
from phytoscope.modelcard import ClassInfo, InputSpec, ModelCard, card_path_for, sha256_of
from phytoscope.training import checkpoint as run_files
from phytoscope.training import dataset as ds
from phytoscope.training.augment import augment_batch
from phytoscope.training.cardnotes import card_notes, not_recognised

log = logging.getLogger(__name__)

MODEL_NAME = "phytoscope-genus"
MODEL_VERSION = "1.0.0"

Progress = Callable[[str, int, int, dict[str, float]], None]
"""progress(stage, step, total, metrics): stage is "prepare", "features", "head" or "fine-tune"."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (recorded in the model card)."""

    dataset: Path
    out_dir: Path
    size: int = 128
    weights: Path | None = None
    class_map: Path | None = None
    split_file: Path | None = None
    """reuse a recorded split instead of drawing a new one"""
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    min_per_class: int = 10
    max_images: int = 0
    batch_size: int = 32
    head_epochs: int = 40
    head_lr: float = 1e-3
    augment_copies: int = 2
    """augmented copies of each training image in the frozen-backbone stage"""
    fine_tune_epochs: int = 4
    fine_tune_lr: float = 2e-5
    fine_tune_from: str | None = "block_12"
    """first backbone layer (name prefix) trained in fine-tuning; None: all of it"""
    target_precision: float = 0.95
    cache_dir: Path | None = None
    resume: bool = False
    hab_rules: Path | None = None
    dataset_note: str = ""
    """licences / sources, written into the card"""
    frames: Path | None = None
    """folder of whole frames whose segments are added (see :mod:`phytoscope.training.frames`)"""
    frames_coco: Path | None = None
    """folder of the frames' COCO polygon annotations"""
    frames_positives: bool = True
    """also add segments on annotated cells (not only the debris negatives)"""

    def to_record(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


@dataclass
class TrainResult:
    model_path: Path
    card_path: Path
    split_path: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    card: ModelCard | None = None


def _nothing(*_: Any) -> None:
    return None


def _check(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled(
            "training cancelled; the last finished epoch is checkpointed (use --resume)"
        )


def _class_weights(y: np.ndarray, n: int) -> dict[int, float]:
    """Inverse-frequency weights (mean 1) so 22 Mesodinium count as much as 900 zooplankton."""
    counts = np.bincount(y, minlength=n).astype(np.float64)
    weights = np.where(counts > 0, len(y) / (n * np.maximum(counts, 1)), 0.0)
    return {i: float(w) for i, w in enumerate(weights)}


def _augmented_epochs(
    keras: Any,
    prepared: np.ndarray,
    train_idx: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray,
    spec: InputSpec,
    batch: int,
    seed: int,
    first_epoch: int,
) -> Any:
    """Freshly augmented, shuffled batches each epoch, seeded by (seed, epoch, batch) so a
    resumed run sees the same images it would have seen without the interruption."""
    from phytoscope.imaging.preprocess import normalise

    class Epochs(keras.utils.PyDataset):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.epoch = first_epoch

        def __len__(self) -> int:
            return int(np.ceil(len(train_idx) / batch))

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            order = np.random.default_rng([seed, self.epoch]).permutation(train_idx)
            chosen = order[i * batch : (i + 1) * batch]
            rng = np.random.default_rng([seed, self.epoch, i])
            return (
                normalise(augment_batch(prepared[chosen], rng), spec),
                y[chosen],
                sample_weight[chosen],
            )

        def on_epoch_end(self) -> None:
            self.epoch += 1

    return Epochs()


def prepare_items(config: TrainConfig) -> tuple[list[ds.Item], Path]:
    """Load, filter and split the dataset (or reuse a split); write the split file."""
    root = ds.dataset_root(config.dataset)
    split_path = config.out_dir / "split.csv"
    if config.split_file is not None:
        items = ds.read_split(Path(config.split_file), root)
    elif config.resume and split_path.exists():
        items = ds.read_split(split_path, root)
    else:
        items = ds.load_items(config.dataset, config.class_map)
        items = ds.drop_rare(items, config.min_per_class)
        items = ds.limit(items, config.max_images, config.seed)
        items = ds.split(items, config.seed, config.val_fraction, config.test_fraction)
    if config.frames is not None and not any(ds.ROI_MARK in i.path.name for i in items):
        from phytoscope.training import frames

        if config.frames_coco is None:
            raise ConfigError("--frames needs --frames-coco (the frames' COCO annotations)")
        rules = ds.read_class_map(config.class_map) if config.class_map else ds.DEFAULT_CLASS_MAP
        items = items + frames.frame_items(
            config.frames, config.frames_coco, items, rules, positives=config.frames_positives
        )
    if not items:
        raise ConfigError("no class has enough images to train on (see --min-per-class)")
    ds.write_split(items, split_path, root)
    return items, split_path


def train(
    config: TrainConfig,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train, evaluate on the held-out test split, and write ``genus.keras`` with its card."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from phytoscope.training import evaluate as ev
    from phytoscope.training import model as nets

    progress = progress or _nothing
    started = time.perf_counter()
    out = Path(config.out_dir)
    ckpt = out / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    state = run_files.load_state(ckpt) if config.resume else {}
    if state and state.get("config", {}).get("size") not in (None, config.size):
        raise ConfigError(
            f"checkpoint in {ckpt} was made at size {state['config']['size']}, not {config.size}"
        )
    elapsed_before = float(state.get("seconds", 0.0))

    keras.utils.set_random_seed(config.seed)
    items, split_path = prepare_items(config)
    order = [t.name for t in ds.TAXONOMY]  # taxonomy order first, then a user's own classes by name
    class_names = sorted(
        {i.cls for i in items}, key=lambda c: (order.index(c) if c in order else len(order), c)
    )
    classes = tuple(ds.class_info(c) for c in class_names)
    if state.get("classes") not in (None, class_names):
        raise ConfigError(
            f"checkpoint in {ckpt} has classes {state['classes']}, this dataset "
            f"{class_names}: resume with the same dataset or start a new --out"
        )
    index = {c: i for i, c in enumerate(class_names)}
    spec = InputSpec(height=config.size, width=config.size)

    progress("prepare", 0, len(items), {})
    prepared = ds.prepared_arrays(
        items, spec, config.cache_dir, lambda k, n: progress("prepare", k, n, {})
    )
    y = np.array([index[i.cls] for i in items], dtype=np.int64)
    splits = np.array([i.split for i in items])
    train_idx = np.nonzero(splits == "train")[0]
    val_idx = np.nonzero(splits == "val")[0]
    if len(val_idx) == 0:  # tiny datasets: validate on the training images, and say so
        log.warning("no validation images: validating on the training split")
        val_idx = train_idx
    weights = _class_weights(y[train_idx], len(classes))
    log.info(
        "classes %s; train %d, val %d, test %d",
        dict(Counter(i.cls for i in items)),
        len(train_idx),
        len(val_idx),
        int((splits == "test").sum()),
    )

    backbone = nets.build_backbone(config.size)
    if config.weights is not None:
        nets.load_backbone_weights(backbone, Path(config.weights))
    pretrained = config.weights is not None
    model = nets.build_classifier(backbone, len(classes), frozen_statistics=pretrained)
    rng = np.random.default_rng(config.seed)
    history: list[dict[str, Any]] = list(state.get("history", []))

    def run_state(**extra: Any) -> dict[str, Any]:
        return {
            "config": config.to_record(),
            "classes": list(class_names),
            "history": history,
            "seconds": elapsed_before + time.perf_counter() - started,
            **extra,
        }

    from phytoscope.imaging.preprocess import normalise

    def monitor(stage: str, total: int, on_epoch: Callable[[dict[str, Any]], None]) -> Any:
        """Per-epoch record, checkpoint, progress and cancel check inside one ``fit`` call
        (one ``fit`` per stage: Keras traces its training step once, not every epoch)."""
        # never None here (``progress or _nothing`` above); mypy does not carry that
        # narrowing into the class body below
        report_progress: Progress = progress

        class Monitor(keras.callbacks.Callback):
            cancelled = False

            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                logs = logs or {}
                record: dict[str, Any] = {
                    "stage": stage,
                    "epoch": epoch + 1,
                    "loss": float(logs.get("loss", np.nan)),
                    "val_loss": float(logs.get("val_loss", np.nan)),
                    "val_top1": float(logs.get("val_accuracy", np.nan)),
                }
                history.append(record)
                on_epoch(record)
                report_progress(stage, epoch + 1, total, record)
                if cancel is not None and cancel():
                    self.cancelled = True
                    self.model.stop_training = True

        return Monitor()

    def stopped(callback: Any) -> None:
        if callback.cancelled:
            raise Cancelled(
                "training cancelled; the last finished epoch is checkpointed (use --resume)"
            )

    # -- stage 1: frozen backbone, head on cached features -------------------------------
    head_file = ckpt / "head.weights.npz"
    if state.get("stage") in ("head_done", "fine_tune", "done") and head_file.exists():
        log.info("resuming: head stage already done")
    else:
        backbone.trainable = False
        copies = [prepared[train_idx]] + [
            augment_batch(prepared[train_idx], rng) for _ in range(config.augment_copies)
        ]
        x_train = np.concatenate(copies)
        y_train = np.tile(y[train_idx], len(copies))
        features = []
        batches = list(range(0, len(x_train), 128))
        for step, start in enumerate(batches):
            _check(cancel)
            features.append(
                np.asarray(backbone(normalise(x_train[start : start + 128], spec), training=False))
            )
            progress("features", step + 1, len(batches), {})
        f_train = np.concatenate(features)
        f_val = np.concatenate(
            [
                np.asarray(
                    backbone(normalise(prepared[val_idx][k : k + 128], spec), training=False)
                )
                for k in range(0, len(val_idx), 128)
            ]
        )
        head = nets.build_head(f_train.shape[1], len(classes))
        head.compile(
            optimizer=keras.optimizers.Adam(config.head_lr),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        best: dict[str, Any] = {"val": -1.0, "weights": head.get_weights()}

        def keep_best(record: dict[str, Any]) -> None:
            if record["val_top1"] >= best["val"]:
                best["val"], best["weights"] = record["val_top1"], head.get_weights()

        callback = monitor("head", config.head_epochs, keep_best)
        head.fit(
            f_train,
            y_train,
            batch_size=64,
            epochs=config.head_epochs,
            class_weight=weights,
            validation_data=(f_val, y[val_idx]),
            shuffle=True,
            verbose=0,
            callbacks=[callback],
        )
        stopped(callback)
        head.set_weights(best["weights"])
        model.get_layer("logits").set_weights(head.get_layer("logits").get_weights())
        run_files.save_weights(model, head_file)
        run_files.save_state(ckpt, run_state(stage="head_done", head_val_top1=best["val"]))
        state = run_files.load_state(ckpt)

    # -- stage 2: fine-tuning ------------------------------------------------------------
    done = int(state.get("epoch", 0)) if state.get("stage") in ("fine_tune", "done") else 0
    last_file, best_file = ckpt / "last.weights.npz", ckpt / "best.weights.npz"
    run_files.load_weights(model, last_file if done and last_file.exists() else head_file)
    best_val = float(state.get("best_val", -1.0))
    best_epoch = int(state.get("best_epoch", 0))
    if config.fine_tune_epochs > 0 and done < config.fine_tune_epochs:
        _check(cancel)
        nets.set_trainable_from(
            backbone, config.fine_tune_from if pretrained else None, freeze_batch_norm=pretrained
        )
        model.compile(
            optimizer=keras.optimizers.Adam(config.fine_tune_lr),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        x_val = normalise(prepared[val_idx], spec)
        if best_val < 0:  # the head-only model is the baseline fine-tuning must beat
            best_val = float(model.evaluate(x_val, y[val_idx], batch_size=64, verbose=0)[1])
            run_files.save_weights(model, best_file)
        sample_weight = np.array([weights[int(k)] for k in y], dtype=np.float32)
        data = _augmented_epochs(
            keras, prepared, train_idx, y, sample_weight, spec, config.batch_size, config.seed, done
        )
        tracker: dict[str, Any] = {"best": best_val, "epoch": int(state.get("best_epoch", 0))}

        def checkpoint(record: dict[str, Any]) -> None:
            if record["val_top1"] >= tracker["best"]:
                tracker["best"], tracker["epoch"] = record["val_top1"], record["epoch"]
                run_files.save_weights(model, best_file)
            run_files.save_weights(model, last_file)
            run_files.save_state(
                ckpt,
                run_state(
                    stage="fine_tune",
                    epoch=record["epoch"],
                    best_val=tracker["best"],
                    best_epoch=tracker["epoch"],
                ),
            )

        callback = monitor("fine-tune", config.fine_tune_epochs, checkpoint)
        model.fit(
            data,
            epochs=config.fine_tune_epochs,
            initial_epoch=done,
            validation_data=(x_val, y[val_idx]),
            verbose=0,
            callbacks=[callback],
        )
        stopped(callback)
        best_val, best_epoch = tracker["best"], tracker["epoch"]
        done = config.fine_tune_epochs
        run_files.load_weights(model, best_file)
    elif best_file.exists():
        run_files.load_weights(model, best_file)

    # -- evaluation on the held-out split, thresholds from validation --------------------
    logits_fn = lambda batch: np.asarray(model(batch, training=False))  # noqa: E731
    test_idx = np.nonzero(splits == "test")[0]
    val_probs = ev.probabilities_of(ev.predict_logits(logits_fn, prepared[val_idx], spec))
    thresholds = ev.precision_thresholds(
        y[val_idx], val_probs, class_names, config.target_precision
    )
    val_report = ev.evaluate_probabilities(
        y[val_idx], val_probs, class_names, [items[i].source for i in val_idx], thresholds
    )
    test_report = None
    if len(test_idx):
        test_probs = ev.probabilities_of(ev.predict_logits(logits_fn, prepared[test_idx], spec))
        test_report = ev.evaluate_probabilities(
            y[test_idx], test_probs, class_names, [items[i].source for i in test_idx], thresholds
        )
        ev.write_report(test_report, out, "test", f"{MODEL_NAME} keras, test split")

    model_path = out / "genus.keras"
    # save an uncompiled twin: the shipped file needs no optimizer state (half its size)
    shipped = nets.build_classifier(
        nets.build_backbone(config.size), len(classes), frozen_statistics=pretrained
    )
    shipped.set_weights(model.get_weights())
    shipped.save(model_path)
    seconds = elapsed_before + time.perf_counter() - started
    run_files.save_state(
        ckpt, run_state(stage="done", epoch=done, best_val=best_val, best_epoch=best_epoch)
    )
    classes = tuple(
        ClassInfo(**{**asdict(c), "threshold": round(float(thresholds.get(c.name, 0.0)), 4)})
        for c in classes
    )
    counts = Counter((i.cls, i.split) for i in items)
    sources = Counter(i.source for i in items)
    missing = not_recognised(classes, config.hab_rules)
    card = ModelCard(
        name=MODEL_NAME,
        version=MODEL_VERSION,
        file=model_path.name,
        format="keras",
        precision="fp32",
        sha256=sha256_of(model_path),
        classes=classes,
        input=spec,
        training={
            "dataset": str(config.dataset),
            "data_note": config.dataset_note,
            "sources": dict(sources),
            "images_per_class": {c: {s: counts[(c, s)] for s in ds.SPLITS} for c in class_names},
            "split_file": split_path.name,
            "split": "stratified by class, grouped by cell (views of one cell stay together), "
            f"seed {config.seed}, val {config.val_fraction}, test {config.test_fraction}",
            "backbone_weights": Path(config.weights).name if config.weights else None,
            "epochs": {"head": config.head_epochs, "fine_tune": config.fine_tune_epochs},
            "fine_tune_from": config.fine_tune_from,
            "selected_weights": (
                f"fine-tune epoch {best_epoch}"
                if best_epoch
                else "frozen-backbone stage (no fine-tuning epoch beat its validation top-1)"
            ),
            "augmentation": "flips, 90-degree rotations, scale +-10 %, brightness/contrast +-10 %",
            "class_weights": {class_names[i]: round(w, 3) for i, w in weights.items()},
            "seconds": round(seconds, 1),
            "machine": f"{platform.machine()} {os.cpu_count()} CPU(s)",
            "config": config.to_record(),
        },
        accuracy=ev.card_accuracy(test_report, val_report, config.target_precision)
        if test_report
        else {"val_top1": round(val_report.top1, 4)},
        not_recognised=missing,
        notes=card_notes(items, missing),
    )
    card_path = card.save(card_path_for(model_path))
    (out / "history.json").write_text(json.dumps(history, indent=2))
    log.info(
        "trained in %.0f s; val top-1 %.3f%s",
        seconds,
        val_report.top1,
        f", test top-1 {test_report.top1:.3f}" if test_report else "",
    )
    return TrainResult(
        model_path, card_path, split_path, history, seconds, ModelCard.load(card_path)
    )
