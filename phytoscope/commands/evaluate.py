"""``phytoscope evaluate MODEL DATASET``: accuracy, per-class and per-source figures, thresholds."""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from phytoscope import backends
from phytoscope import config as cfg
from phytoscope.backends.options import TrtOptions
from phytoscope.config import PRECISION_CHOICES
from phytoscope.errors import ExitCode
from phytoscope.modelcard import ModelCard, resolve
from phytoscope.training import dataset as ds
from phytoscope.training import evaluate as ev

PREDICT_BATCH = 64
"""Images per engine call (and TensorRT's optimisation profile batch)."""

HELP = "measure a model on labelled images: top-1, per-class P/R/F1, per-source accuracy, confusion matrix"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", type=Path, help="model card (.json), model file (.onnx/.keras) or model folder"
    )
    parser.add_argument(
        "dataset",
        type=Path,
        help="split CSV written by `phytoscope train` (its --subset is evaluated), "
        "a folder of class sub-folders, or a manifest CSV",
    )
    parser.add_argument(
        "--subset",
        choices=("test", "val", "train", "all"),
        default="test",
        help="rows of a split CSV to evaluate (default test)",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        help="folder the split CSV's image paths are relative to (default: the CSV's folder)",
    )
    parser.add_argument("--class-map", type=Path, help="label -> class CSV for a manifest dataset")
    parser.add_argument(
        "--backend",
        choices=("auto", "onnxruntime", "tensorflow", "tensorrt"),
        default="auto",
        help="engine to run the model with (default: the one for the model's format)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="fp32",
        help="which model of a folder to run; with --backend tensorrt, the engine's "
        "precision (default fp32)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for the report, confusion CSV and PNG (default build/evaluation/<model file>)",
    )
    parser.add_argument(
        "--target-precision",
        type=float,
        default=0.95,
        help="precision each class's confidence threshold must keep (default 0.95)",
    )
    parser.add_argument(
        "--write-thresholds",
        action="store_true",
        help="store the thresholds in the model card (from the split's val rows when "
        "DATASET is a split CSV, else from the evaluated images)",
    )
    parser.add_argument("--cache", type=Path, help="folder for prepared image arrays")
    frames = parser.add_argument_group(
        "whole frames",
        "instead of crops: segment annotated whole frames and classify every segment "
        "(annotated-cell recall and false HAB-relevant share of the other segments, before "
        "and after box merging); DATASET is then the split CSV whose --subset frames are used",
    )
    frames.add_argument("--frames", type=Path, metavar="DIR", help="folder of whole frames")
    frames.add_argument(
        "--frames-coco", type=Path, metavar="DIR", help="folder of the frames' COCO JSON files"
    )
    group = parser.add_argument_group(
        "open set",
        "--open-set: refit the model's head on cached backbone embeddings leaving classes and "
        "sources out (phytoscope.training.heldout); MODEL is an ONNX model, DATASET its split CSV",
    )
    group.add_argument(
        "--open-set",
        action="store_true",
        help="held-out class and source evaluation of the novelty score instead of top-1",
    )
    group.add_argument(
        "--manifest",
        type=Path,
        help="manifest CSV whose unlabelled images and eyepiece frames are also scored "
        "(default: manifest.csv in --data-root)",
    )
    group.add_argument(
        "--methods",
        choices=("chosen", "previous", "study"),
        default="chosen",
        help="chosen: the shipped method only; previous: the one before it and the shipped one "
        "side by side; study: the comparison grid (slow); with "
        "--frames/--frames-coco the frames' segments are embedded too (hard negatives, frame "
        "figures)",
    )


def _is_split_csv(path: Path) -> bool:
    if path.suffix.lower() != ".csv" or not path.is_file():
        return False
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().strip().split(",")
    return "split" in header and "class" in header


def _backend_name(args: argparse.Namespace) -> str:
    """``auto`` means the engine of the model's own format (a Keras card runs in TensorFlow)."""
    if args.backend != "auto":
        return str(args.backend)
    card = resolve(args.model, "onnx", args.precision, cfg.models_dir())
    return "tensorflow" if card.format == "keras" else "onnxruntime"


def _frames_command(args: argparse.Namespace) -> str:
    """The command line that reproduces a frames evaluation (rebuilt from the options, so it
    is the same whether typed or called in-process)."""
    words = ["phytoscope", "evaluate", str(args.model), str(args.dataset)]
    if args.data_root is not None:
        words += ["--data-root", str(args.data_root)]
    if args.subset != "test":
        words += ["--subset", args.subset]
    if args.backend != "auto":
        words += ["--backend", args.backend]
    if args.precision != "fp32":
        words += ["--precision", args.precision]
    words += ["--frames", str(args.frames), "--frames-coco", str(args.frames_coco)]
    if args.out is not None:
        words += ["--out", str(args.out)]
    return shlex.join(words)


def _run_frames(args: argparse.Namespace, backend_name: str) -> int:
    """``--frames``: the whole-frame evaluation (:mod:`phytoscope.training.frames_eval`)."""
    from phytoscope.core.classifier import Classifier
    from phytoscope.training import frames_eval

    if args.frames_coco is None or not _is_split_csv(args.dataset):
        print(
            "phytoscope: --frames needs --frames-coco and a split CSV as DATASET", file=sys.stderr
        )
        return ExitCode.USAGE
    split = ds.read_split(args.dataset, args.data_root or args.dataset.parent)
    backend = backends.create(backend_name, args.precision, model=args.model)
    with backend:
        report = frames_eval.frames_report(
            args.frames,
            args.frames_coco,
            split,
            Classifier(backend),
            args.subset,
            command=_frames_command(args),
            backend=backend_name,
            precision=backend.precision,
            split_file=args.dataset.name,
        )
    out = args.out or Path("build") / "evaluation" / backend.card.model_path.name
    paths = frames_eval.write_report(report, out)
    for variant, result in report["variants"].items():
        total = result["total"]
        print(
            f"{variant}: {total['segments']} segments; cells called Pseudo-nitzschia "
            f"{total['cells_called']}/{total['cells']}; non-cell segments called HAB-relevant "
            f"{total['non_cell_hab']}/{total['non_cell']} ({total['false_hab_share']:.1%})"
        )
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return ExitCode.OK


def run(args: argparse.Namespace) -> int:
    if args.open_set:
        return run_open_set(args)
    # through create(), so each engine chooses its card and precision (select_card): TensorRT
    # builds its fp16/int8 engine from the FP32 ONNX model, as classify does
    backend_name = _backend_name(args)
    if args.frames is not None:
        return _run_frames(args, backend_name)
    backend = backends.create(
        backend_name,
        args.precision,
        model=args.model,
        options=TrtOptions(batch=PREDICT_BATCH),
    )
    card = backend.card
    classes = card.class_names

    if _is_split_csv(args.dataset):
        root = args.data_root or args.dataset.parent
        all_items = ds.read_split(args.dataset, root)
        items = [i for i in all_items if args.subset == "all" or i.split == args.subset]
        calib_items = [i for i in all_items if i.split == "val"]
    else:
        items = ds.load_items(args.dataset, args.class_map)
        calib_items = items
    unknown = sorted({i.cls for i in items} - set(classes))
    if unknown:
        print(
            f"note: classes the model does not know are left out: {', '.join(unknown)}",
            file=sys.stderr,
        )
    items = [i for i in items if i.cls in classes]
    calib_items = [i for i in calib_items if i.cls in classes]
    if not items:
        print("phytoscope: no images of the model's classes to evaluate", file=sys.stderr)
        return ExitCode.USAGE
    cache = args.cache or cfg.cache_dir() / "training"
    index = {c: i for i, c in enumerate(classes)}

    with backend:

        def probabilities(subset: list[ds.Item]) -> np.ndarray:
            prepared = ds.prepared_arrays(subset, card.input, cache)
            return ev.probabilities_of(
                ev.predict_logits(backend.logits, prepared, card.input, PREDICT_BATCH)
            )

        probs = probabilities(items)
        y = np.array([index[i.cls] for i in items], dtype=np.int64)
        thresholds = {c.name: c.threshold for c in card.classes}
        if args.write_thresholds:
            calib_probs = probs if calib_items is items else probabilities(calib_items)
            calib_y = np.array([index[i.cls] for i in calib_items], dtype=np.int64)
            thresholds = ev.precision_thresholds(
                calib_y, calib_probs, classes, args.target_precision
            )
    report = ev.evaluate_probabilities(y, probs, classes, [i.source for i in items], thresholds)
    out = args.out or Path("build") / "evaluation" / card.model_path.name
    paths = ev.write_report(
        report,
        out,
        "evaluation",
        f"{card.label} ({backend_name} {backend.precision}), {args.dataset.name} {args.subset}",
    )

    print(f"model: {card.label} via {backend_name} {backend.precision}")
    print(f"images: {report.n}   top-1: {report.top1:.4f}")
    if report.with_thresholds:
        w = report.with_thresholds
        print(
            f"with thresholds: {w['coverage']:.1%} classified, top-1 of those {w['top1_of_kept']:.4f}"
        )
    print(f"{'class':28s} {'prec':>6s} {'recall':>6s} {'F1':>6s} {'n':>5s} {'threshold':>9s}")
    for name, row in report.per_class.items():
        print(
            f"{name:28s} {row['precision']:6.3f} {row['recall']:6.3f} {row['f1']:6.3f} "
            f"{int(row['support']):5d} {thresholds.get(name, 0.0):9.3f}"
        )
    print("per source:")
    for source, row in report.per_source.items():
        print(f"  {source:32s} {row['top1']:.4f} (n={row['n']})")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    if args.write_thresholds:
        assert card.path is not None
        new_classes = tuple(
            replace(c, threshold=round(float(thresholds[c.name]), 4)) for c in card.classes
        )
        accuracy = {
            **card.accuracy,
            "threshold_target_precision": args.target_precision,
            "threshold_min_predictions": ev.MIN_PREDICTIONS,
        }
        if args.subset == "test" and report.with_thresholds:
            accuracy["test_with_thresholds"] = {
                k: round(v, 4) for k, v in report.with_thresholds.items()
            }
        replace(card, classes=new_classes, accuracy=accuracy).save(card.path)
        ModelCard.load(card.path)  # re-read: a card we cannot read back must fail here
        print(f"thresholds written to {card.path}")
    return ExitCode.OK


def heldout_methods() -> dict[str, tuple[Any, ...]]:
    """``--methods`` choices: the open-set methods each one runs (numpy/scipy imported only
    when one is run)."""
    from phytoscope.training import heldout

    return {
        "chosen": (heldout.CHOSEN,),
        "previous": (heldout.PREVIOUS, heldout.CHOSEN),
        "study": heldout.STUDY,
    }


def run_open_set(args: argparse.Namespace) -> int:
    """``--open-set``: leave-classes-out and leave-one-source-out tables (models/README.md)."""
    from phytoscope.training import embedcache, heldout

    card = resolve(args.model, "onnx", "fp32", cfg.models_dir())
    if card.format != "onnx" or not _is_split_csv(args.dataset):
        print(
            "phytoscope: --open-set needs an ONNX model and its split CSV",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    root = args.data_root or args.dataset.parent
    manifest = args.manifest or root / "manifest.csv"
    emb = embedcache.load_or_build(
        card.model_path,
        args.dataset,
        root,
        manifest,
        args.cache or cfg.cache_dir() / "openset",
        frames=(args.frames, args.frames_coco) if args.frames and args.frames_coco else None,
        say=lambda m: print(m, flush=True),
    )
    methods = heldout_methods()[args.methods]
    result = heldout.study(emb, card.class_names, methods, say=lambda m: print(m, flush=True))
    out = args.out or Path("build") / "evaluation" / "openset"
    paths = heldout.write_results(result, out)
    for name, res in result["methods"].items():
        s = res["summary"]
        print(
            f"{name}: held-out classes called unknown {s['held_out_unknown_mean']:.1%} "
            f"(worst {s['held_out_unknown_min']:.1%}), AUROC {s['auroc_mean']:.3f}, known "
            f"top-1 of classified {s['known_top1_of_classified_mean']:.1%} at coverage "
            f"{s['known_coverage_mean']:.1%}"
        )
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return ExitCode.OK
