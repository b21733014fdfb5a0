"""``phytoscope export MODEL``: ONNX FP32, ONNX INT8 and Keras forms, each with its card."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from phytoscope import config as cfg
from phytoscope.errors import ExitCode
from phytoscope.modelcard import card_path_for
from phytoscope.training.export import FORMS, export_all

HELP = "export a trained Keras model to ONNX FP32, ONNX INT8 (calibrated) and Keras, each with its card"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", type=Path, help="the trained Keras model (genus.keras) or its card"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("models"), help="output folder (default models/)"
    )
    parser.add_argument(
        "--forms",
        default="onnx,int8,keras",
        help="comma-separated forms to write: onnx, int8, keras (default all)",
    )
    parser.add_argument(
        "--split",
        type=Path,
        help="split CSV for test accuracy and INT8 calibration (default: the card's)",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        help="folder the split's image paths are relative to (the training dataset's folder)",
    )
    parser.add_argument(
        "--calibration-images",
        type=int,
        default=300,
        help="training images used to calibrate INT8 (default 300)",
    )
    parser.add_argument(
        "--calibration-method",
        choices=("auto", "minmax", "minmax-average", "percentile", "entropy"),
        default="auto",
        help="INT8 activation-range calibration; auto (default) tries minmax, "
        "minmax-average and percentile and keeps the one closest to FP32 on "
        "the validation split",
    )
    parser.add_argument("--cache", type=Path, help="folder for prepared image arrays")
    group = parser.add_argument_group(
        "open set",
        "--open-set: MODEL is an exported ONNX model (its backbone is kept); a head with the "
        "novelty score is refitted on its cached embeddings and all three forms are written",
    )
    group.add_argument("--open-set", action="store_true", help="write the open-set forms")
    group.add_argument(
        "--keras", type=Path, help="the Keras form of MODEL (default: genus.keras beside it)"
    )
    group.add_argument(
        "--manifest",
        type=Path,
        help="manifest CSV of the unlabelled images and eyepiece frames scored in the cards "
        "(default: manifest.csv in --data-root)",
    )
    group.add_argument(
        "--frames",
        type=Path,
        help="folder of annotated whole frames whose segments are embedded too (debris as "
        "hard negatives, frame figures); needs --frames-coco",
    )
    group.add_argument("--frames-coco", type=Path, help="the frames' COCO annotation folder")
    group.add_argument("--version", default="1.1.0", help="model version for the cards")


def run(args: argparse.Namespace) -> int:
    if args.open_set:
        return run_open_set(args)
    forms = tuple(f.strip() for f in args.forms.split(",") if f.strip())
    bad = [f for f in forms if f not in FORMS]
    if bad:
        print(f"phytoscope: unknown form(s) {', '.join(bad)}; choose from {', '.join(FORMS)}")
        return ExitCode.USAGE
    card_path = args.model if args.model.suffix == ".json" else card_path_for(args.model)
    results = export_all(
        card_path,
        args.out,
        dataset_root=args.data_root,
        split_file=args.split,
        forms=forms,
        calibration_images=args.calibration_images,
        cache_dir=args.cache or cfg.cache_dir() / "training",
        progress=lambda message: print(message, flush=True),
        int8_method=args.calibration_method,
    )
    print(f"{'form':6s} {'file':22s} {'size MB':>8s} {'test top-1':>10s}")
    for r in results:
        path = r.card.model_path
        top1 = f"{r.test_top1:.4f}" if r.test_top1 is not None else "not measured"
        print(f"{r.form:6s} {path.name:22s} {path.stat().st_size / 1e6:8.1f} {top1:>10s}")
    measured = [r for r in results if r.test_top1 is not None]
    if measured:
        sources = sorted({s for r in measured for s in r.per_source})
        print("per source (test top-1): " + ", ".join(r.form for r in measured))
        for s in sources:
            print(
                f"  {s:32s} "
                + "  ".join(
                    f"{r.per_source.get(s, {}).get('top1', float('nan')):.4f}" for r in measured
                )
            )
    return ExitCode.OK


def run_open_set(args: argparse.Namespace) -> int:
    """``--open-set``: the shipped model's forms with the novelty score (models/README.md)."""
    from phytoscope.modelcard import ModelCard
    from phytoscope.training import dataset as ds
    from phytoscope.training import embedcache, heldout, openset_forms

    base = args.model.with_suffix("") if args.model.suffix == ".json" else args.model
    card = ModelCard.load(card_path_for(base))
    split = args.split or base.parent / str(card.training.get("split_file", "genus_split.csv"))
    if card.format != "onnx" or args.data_root is None:
        print("phytoscope: --open-set needs the ONNX model and --data-root of its split")
        return ExitCode.USAGE
    manifest = args.manifest or args.data_root / "manifest.csv"
    cache = args.cache or cfg.cache_dir() / "openset"
    say = lambda message: print(message, flush=True)  # noqa: E731
    frames = (args.frames, args.frames_coco) if args.frames and args.frames_coco else None
    emb = embedcache.load_or_build(
        base, split, args.data_root, manifest, cache, frames=frames, say=say
    )
    novel = {
        f"unlabelled {s}": [
            i for i in embedcache.unlabelled_items(manifest, card.class_names) if i.source == s
        ]
        for s in sorted({i.source for i in embedcache.unlabelled_items(manifest, card.class_names)})
    }
    for item in embedcache.eyepiece_items(manifest):
        if item.cls not in card.class_names:
            novel.setdefault(f"eyepiece {item.label}", []).append(item)
    details = None
    # the study's figures for the shipped method, for the card: the grid's file or the
    # shipped method's own run (`evaluate --open-set --methods chosen`) beside it
    for study in sorted((args.out / "evaluation" / "openset").rglob("openset.json")):
        chosen = json.loads(study.read_text(encoding="utf-8"))["methods"].get(heldout.CHOSEN.name)
        if chosen:
            details = {"study": study.relative_to(args.out).as_posix(), **chosen["summary"]}
            break
    frame_val_items = None
    if frames is not None:
        from phytoscope.training import frames as fr

        say("segmenting the annotated frames (validation frames: their own threshold)")
        frame_val_items = [
            i
            for i in fr.frame_items(frames[0], frames[1], ds.read_split(split, args.data_root))
            if i.split == "val"
        ]
    cards = openset_forms.ship(
        base,
        args.keras or base.with_name("genus.keras"),
        emb,
        ds.read_split(split, args.data_root),
        novel,
        args.out,
        heldout.CHOSEN,
        version=args.version,
        cache_dir=cache / "prepared",
        calibration_images=args.calibration_images,
        int8_method="minmax-average"
        if args.calibration_method == "auto"
        else args.calibration_method,
        details=details,
        frame_val_items=frame_val_items,
        say=say,
    )
    for c in cards:
        o = c.accuracy["test_open_set"]
        print(
            f"{c.file:18s} test top-1 {c.accuracy['test_top1']:.4f}; novelty threshold "
            f"{c.novelty.threshold if c.novelty else 0:.4f}: {o['coverage']:.1%} classified, "
            f"{o['top1_of_classified']:.1%} of those right"
        )
        for name, n in c.accuracy["novel_called_unknown"].items():
            print(f"    {name:40s} unknown {n['unknown']:.1%} of {n['n']}")
    return ExitCode.OK
