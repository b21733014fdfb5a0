"""``phytoscope train DATASET``: transfer-learn the genus classifier from labelled images."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from phytoscope import config as cfg
from phytoscope.errors import ExitCode
from phytoscope.training.sizes import compare_sizes
from phytoscope.training.train import TrainConfig, train

HELP = "train the genus classifier (Keras MobileNetV2 transfer learning) from labelled images"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset",
        type=Path,
        help="folder of class sub-folders, or a manifest CSV (path,source,label,...)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("build/genus"),
        help="output folder: genus.keras + card, split.csv, checkpoints (default: build/genus)",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        help="local Keras .h5 holding a MobileNetV2 alpha=1.0 backbone (never downloaded); "
        "default: random initialisation",
    )
    parser.add_argument("--size", type=int, default=128, help="input size in pixels (default 128)")
    parser.add_argument(
        "--class-map",
        type=Path,
        help="CSV source,label,class mapping manifest labels to classes (default: built-in)",
    )
    parser.add_argument("--split", type=Path, dest="split_file", help="reuse a recorded split CSV")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--head-epochs", type=int, default=40, help="frozen-backbone epochs (default 40)"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=4,
        dest="fine_tune_epochs",
        help="fine-tuning epochs (default 4; 0 = head only)",
    )
    parser.add_argument(
        "--fine-tune-from",
        default="block_12",
        help="first backbone layer trained when fine-tuning ('all' for every layer)",
    )
    parser.add_argument(
        "--fine-tune-lr",
        type=float,
        default=2e-5,
        help="Adam learning rate when fine-tuning (default 2e-5)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--augment-copies",
        type=int,
        default=2,
        help="augmented copies per training image in the frozen stage (default 2)",
    )
    parser.add_argument(
        "--max-images", type=int, default=0, help="use at most N images (quick run)"
    )
    parser.add_argument(
        "--min-per-class",
        type=int,
        default=10,
        help="leave out classes with fewer images (default 10)",
    )
    parser.add_argument(
        "--target-precision",
        type=float,
        default=0.95,
        help="per-class confidence thresholds keep this precision on validation",
    )
    parser.add_argument(
        "--hab-rules",
        type=Path,
        help="HAB threshold CSV (taxon column): lists the HAB taxa the model cannot see",
    )
    parser.add_argument(
        "--cache", type=Path, help="folder for prepared image arrays (default: user cache)"
    )
    parser.add_argument(
        "--note", default="", help="data sources and licences, written into the card"
    )
    parser.add_argument(
        "--frames",
        type=Path,
        metavar="DIR",
        help="whole microscope frames (searched recursively) whose segments are added: "
        "segments on no annotated cell as detritus/other, segments on a cell as its "
        "class; needs --frames-coco",
    )
    parser.add_argument(
        "--frames-coco",
        type=Path,
        metavar="DIR",
        help="folder of the frames' COCO polygon annotation files (*.json)",
    )
    parser.add_argument(
        "--frames-negatives-only",
        action="store_true",
        help="add only the debris segments of --frames, not those on annotated cells",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the checkpoints in --out"
    )
    parser.add_argument(
        "--compare-sizes",
        metavar="SIZES",
        help="instead of training one model, measure validation top-1 (frozen backbone) "
        "and ONNX Runtime CPU latency at each size, e.g. 96,128,160; writes "
        "size_comparison.json in --out",
    )


def run(args: argparse.Namespace) -> int:
    if args.size < 32:
        print(
            "phytoscope: --size must be at least 32 (MobileNetV2's smallest input)", file=sys.stderr
        )
        return ExitCode.USAGE
    rules = args.hab_rules
    if rules is None:
        candidate = cfg.resources_dir() / "hab_thresholds.csv"
        rules = candidate if candidate.exists() else None
    config = TrainConfig(
        dataset=args.dataset,
        out_dir=args.out,
        size=args.size,
        weights=args.weights,
        class_map=args.class_map,
        split_file=args.split_file,
        seed=args.seed,
        max_images=args.max_images,
        min_per_class=args.min_per_class,
        batch_size=args.batch_size,
        head_epochs=args.head_epochs,
        augment_copies=args.augment_copies,
        fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_lr=args.fine_tune_lr,
        fine_tune_from=None if args.fine_tune_from == "all" else args.fine_tune_from,
        target_precision=args.target_precision,
        cache_dir=args.cache or cfg.cache_dir() / "training",
        resume=args.resume,
        hab_rules=rules,
        dataset_note=args.note,
        frames=args.frames,
        frames_coco=args.frames_coco,
        frames_positives=not args.frames_negatives_only,
    )

    def progress(stage: str, step: int, total: int, metrics: dict[str, float]) -> None:
        if stage in ("head", "fine-tune"):
            shown = " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
            print(f"{stage} epoch {step}/{total}: {shown}", flush=True)
        elif step == total and total:
            print(f"{stage}: {total} done", flush=True)

    if args.compare_sizes:
        sizes = tuple(int(s) for s in args.compare_sizes.split(","))
        rows = compare_sizes(config, sizes, progress)
        print(f"{'size':>5s} {'val top-1':>10s} {'ms/img b1':>10s} {'ms/img b16':>11s}")
        for row in rows:
            print(
                f"{row['size']:5d} {row['val_top1_frozen_backbone']:10.4f} "
                f"{row['ms_per_image_batch1']:10.2f} {row['ms_per_image_batch16']:11.2f}"
            )
        path = Path(args.out) / "size_comparison.json"
        path.write_text(json.dumps(rows, indent=2) + "\n")
        print(f"written: {path}")
        return ExitCode.OK
    result = train(config, progress)
    card = result.card
    assert card is not None
    print(f"model: {result.model_path}\ncard: {result.card_path}\nsplit: {result.split_path}")
    print(f"time: {result.seconds:.0f} s")
    acc = card.accuracy
    if "test_top1" in acc:
        print(
            f"test top-1: {acc['test_top1']:.4f} on {acc['n_test']} images (val {acc.get('val_top1')})"
        )
        for source, row in acc["per_source"].items():
            print(f"  {source}: {row['top1']:.4f} (n={row['n']})")
    return ExitCode.OK
