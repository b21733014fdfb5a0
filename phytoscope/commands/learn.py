"""``phytoscope learn FOLDER... --out DIR``: teach the model a lab's own genera in a minute.

An argparse adapter over :func:`phytoscope.training.learn.learn` (the window's *Add genus /
improve model…* runs the same function) and, with ``--evaluate``, over
:func:`phytoscope.training.learn_curve.examples_curve`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from phytoscope.commands.progressbar import terminal_progress
from phytoscope.errors import ExitCode
from phytoscope.training.learn import LearnRequest, LearnResult, learn
from phytoscope.training.learn_curve import CURVE_SIZES, curve_markdown, examples_curve

HELP = "teach the model new genera (or more examples) from class folders, in about a minute"

UNITS = {"read": "images", "embed": "images", "fit": "steps", "write": "files", "curve": "fits"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "folders",
        nargs="*",
        type=Path,
        metavar="FOLDER",
        help="folders holding one sub-folder per class (FOLDER/Alexandrium/*.png), the "
        "layout Export corrections writes; a sub-folder named like a model class adds "
        "examples to it, any other name is a new class",
    )
    parser.add_argument(
        "--out", type=Path, help="folder for the new model (never the base model's folder)"
    )
    parser.add_argument(
        "--model",
        type=Path,
        help="base model: folder, card or .onnx with its embedding bank (default: installed)",
    )
    parser.add_argument("--int8", action="store_true", help="also write the INT8 form")
    parser.add_argument(
        "--from-corrections",
        type=Path,
        metavar="DB",
        dest="corrections_db",
        help="also learn from the corrections stored in this results database",
    )
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="instead of writing a model, measure accuracy at "
        + ", ".join(map(str, CURVE_SIZES))
        + " images per class of FOLDER (its classes are taken out of the base bank first); "
        "with --out, writes learn_curve.json and .md there",
    )
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if not args.folders and args.corrections_db is None:
        print("phytoscope: give FOLDER(s) of class sub-folders or --from-corrections DB",
              file=sys.stderr)  # fmt: skip
        return ExitCode.USAGE
    if args.evaluate:
        return _evaluate(args)
    if args.out is None:
        print("phytoscope: --out DIR is needed (the folder the new model goes to)",
              file=sys.stderr)  # fmt: skip
        return ExitCode.USAGE
    request = LearnRequest(
        folders=tuple(args.folders),
        out_dir=args.out,
        model=args.model,
        int8=args.int8,
        corrections_db=args.corrections_db,
        folds=args.folds,
        seed=args.seed,
    )
    with terminal_progress(args.progress, UNITS) as progress:
        result = learn(request, progress)
    if args.json:
        print(json.dumps(result_dict(result), indent=2))
    else:
        print(summary(result))
    return ExitCode.OK


def _evaluate(args: argparse.Namespace) -> int:
    with terminal_progress(args.progress, UNITS) as progress:
        curve = examples_curve(
            tuple(args.folders), args.model, folds=args.folds, seed=args.seed, progress=progress
        )
    text = curve_markdown(curve)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "learn_curve.json").write_text(json.dumps(curve, indent=2) + "\n")
        (args.out / "learn_curve.md").write_text(text + "\n")
    print(json.dumps(curve, indent=2) if args.json else text)
    return ExitCode.OK


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def summary(result: LearnResult) -> str:
    """What a technician reads after a run: per class, where it came from and how well."""
    lines = [f"model: {result.model_path}", f"card:  {result.card_path}"]
    if result.int8_path is not None:
        lines.append(f"int8:  {result.int8_path}")
    lines += ["", f"{'class':28s} {'origin':14s} {'images':>7s} {'top-1 (cv)':>11s} {'kept':>8s}"]
    for c in result.classes:
        images = f"{c.local_images}" if c.origin != "base" else f"({c.bank_images})"
        flag = "  rough: under 20 images" if c.rough else ""
        hab_mark = "  HAB-monitored" if c.monitored and c.origin == "learnt" else ""
        lines.append(
            f"{c.name:28s} {c.origin:14s} {images:>7s} {_pct(c.top1):>11s} "
            f"{_pct(c.coverage):>8s}{flag}{hab_mark}"
        )
    lines.append("")
    lines.append(
        "images: the lab's images (bank embeddings of a base class in brackets); top-1 "
        "cross-validated; kept: share not called unknown"
    )
    if result.base_drop_points is not None:
        change = 0.0 - result.base_drop_points
        lines.append(
            f"base classes on their bank embeddings: top-1 {_pct(result.base_top1_before)} "
            f"before, {_pct(result.base_top1_after)} after ({change:+.2f} points: what the new "
            "classes took from them)"
        )
    if result.newly_monitored:
        lines.append("now monitored by the HAB rules: " + ", ".join(result.newly_monitored))
    if result.skipped:
        lines.append(f"{len(result.skipped)} image(s) skipped (unreadable):")
        lines += [f"  {s.path}: {s.reason}" for s in result.skipped[:20]]
        if len(result.skipped) > 20:
            lines.append(f"  … and {len(result.skipped) - 20} more (listed in the card)")
    lines.append(f"time: {result.seconds:.1f} s")
    lines.append(f"use it: phytoscope classify --model {result.model_path.parent} IMAGES")
    return "\n".join(lines)


def result_dict(result: LearnResult) -> dict[str, object]:
    return {
        "model": str(result.model_path),
        "card": str(result.card_path),
        "int8": str(result.int8_path) if result.int8_path else None,
        "seconds": round(result.seconds, 2),
        "base_top1_before": result.base_top1_before,
        "base_top1_after": result.base_top1_after,
        "base_drop_points": result.base_drop_points,
        "newly_monitored": list(result.newly_monitored),
        "skipped": [{"path": str(s.path), "reason": s.reason} for s in result.skipped],
        "classes": [
            {
                "name": c.name,
                "origin": c.origin,
                "local_images": c.local_images,
                "bank_images": c.bank_images,
                "top1": c.top1,
                "coverage": c.coverage,
                "rough": c.rough,
                "monitored": c.monitored,
            }
            for c in result.classes
        ],
    }
