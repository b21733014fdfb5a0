"""How fast and how well `phytoscope learn` teaches a class back, on the shared data.

Usage (from the repository root):

    python models/learn_benchmark.py --data ../shared/data [--out models/evaluation/learn]
        [--classes Tripos,Mesodinium] [--images 20] [--work build/learn_benchmark]
    python models/learn_benchmark.py --data ../shared/data --write-bank   # models/genus.bank.npz

For each held-out class H:

1. *without H*: the shipped model with H's column taken out of its head and the novelty
   prototypes refitted on its embedding bank minus H (the model a lab would have before it
   met H; the other columns were trained with H among the negatives, which the figures for
   H may profit from slightly), written with its own bank;
2. *learn H back*: ``phytoscope learn TEACH --model WITHOUT_H --out LEARNT_H`` runs as a
   separate process on a folder of ``--images`` training-split images of H, timed from
   process start to exit (wall clock: imports, reading, embedding, cross-validation, writing);
3. the learnt model, the shipped model and the head refitted on the whole bank are run
   through ONNX Runtime / numpy on the **test split** (never seen by the bank or the
   learning): top-1 of H, top-1 of every other class (the drop the issue bounds at 1 point)
   and the share called "unknown".

Then ``phytoscope learn --evaluate`` measures the examples-per-class curve (5, 10, 20, 50) on
a folder of Tripos, Mesodinium and three genera the shipped model never saw (the eyepiece
frames' Closterium, Nitzschia and Microcystis). Writes learn_benchmark.json and .md into
``--out``. The bank is the shipped one (``models/genus.bank.npz``) when it exists, else one
built here from the training split exactly as ``onnx_head.write_model`` stores banks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from phytoscope.bench.machine import machine_facts  # noqa: E402
from phytoscope.modelcard import ModelCard  # noqa: E402
from phytoscope.training import bank, extend, onnx_head, openset  # noqa: E402
from phytoscope.training import dataset as ds  # noqa: E402
from phytoscope.training.blas import one_blas_thread  # noqa: E402
from phytoscope.training.learn_curve import curve_markdown, examples_curve  # noqa: E402

CURVE_EXTRA = {
    "Closterium": "images/lynkos_eyepiece_frames/closterium",
    "Nitzschia": "images/lynkos_eyepiece_frames/nitzschia",
    "Microcystis": "images/lynkos_eyepiece_frames/microcystis",
}


def _link_all(paths: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(paths):
        (folder / f"{i:03d}_{p.name}").symlink_to(p)


def _run_onnx(
    path: Path, prepared: np.ndarray, card: ModelCard
) -> tuple[np.ndarray, np.ndarray | None]:
    import onnxruntime as ort

    from phytoscope.imaging.preprocess import normalise

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outputs = [o.name for o in session.get_outputs()]
    logits, novelty = [], []
    for start in range(0, len(prepared), 64):
        got = dict(
            zip(
                outputs,
                session.run(None, {name: normalise(prepared[start : start + 64], card.input)}),
                strict=True,
            )
        )
        logits.append(got.get("logits", got[outputs[0]]))
        if "novelty" in got:
            novelty.append(got["novelty"])
    return np.concatenate(logits), (np.concatenate(novelty) if novelty else None)


def _scores(pred_names: list[str], unknown: np.ndarray, truth: list[str], held: str) -> dict:
    pred = np.array(pred_names)
    y = np.array(truth)
    mine, rest = y == held, y != held
    return {
        "held_out_top1": round(float((pred[mine] == y[mine]).mean()), 4),
        "held_out_n": int(mine.sum()),
        "held_out_unknown": round(float(unknown[mine].mean()), 4),
        "others_top1": round(float((pred[rest] == y[rest]).mean()), 4),
        "others_n": int(rest.sum()),
        "others_unknown": round(float(unknown[rest].mean()), 4),
        "others_called_held_out": int((pred[rest] == held).sum()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "evaluation" / "learn")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "learn_benchmark")
    parser.add_argument("--classes", default="Tripos,Mesodinium")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--no-curve", action="store_true")
    parser.add_argument(
        "--write-bank",
        action="store_true",
        help="only write models/genus.bank.npz (the shipped model's bank, from its training "
        "split, as onnx_head.write_model stores banks) and stop",
    )
    args = parser.parse_args(argv)
    data, work = args.data.resolve(), args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    load_before = os.getloadavg()
    card = ModelCard.load(ROOT / "models" / "genus.onnx.json")
    items = ds.read_split(ROOT / "models" / "genus_split.csv", data)
    cache = work / "cache"
    prepared = ds.prepared_arrays(items, card.input, cache)
    emb_file = ROOT / "build" / "learn_benchmark_embeddings.npz"
    if emb_file.exists() and np.load(emb_file)["x"].shape[0] == len(items):
        x = np.load(emb_file)["x"]
    else:
        x = onnx_head.embed(card.model_path, prepared, card.input)
        emb_file.parent.mkdir(parents=True, exist_ok=True)
        np.savez(emb_file, x=x)
    classes = card.class_names
    y = np.array([classes.index(i.cls) for i in items])
    split = np.array([i.split for i in items])
    train, test = split == "train", split == "test"
    test_truth = [items[i].cls for i in np.flatnonzero(test)]

    shipped_bank = bank.bank_path_for(card.model_path)
    if args.write_bank:
        bank.save_bank(shipped_bank, x[train], y[train], classes)
        print(f"written: {shipped_bank} ({int(train.sum())} training embeddings, <= 200 per class)")
        return 0
    base = work / "base"
    base.mkdir()
    for f in (card.model_path, card.path):
        shutil.copy(f, base / f.name)
    if shipped_bank.exists():
        shutil.copy(shipped_bank, base / shipped_bank.name)
        bank_note = "shipped (models/genus.bank.npz)"
    else:
        bank.save_bank(bank.bank_path_for(base / card.file), x[train], y[train], classes)
        bank_note = "built here from the training split (200 per class at most, float16)"
    bank_x, bank_y, _ = bank.load_bank(bank.bank_path_for(base / card.file))

    shipped_logits, _ = _run_onnx(card.model_path, prepared[test], card)
    shipped_w, shipped_b = extend.base_head(card.model_path)
    shipped_pred = [classes[i] for i in shipped_logits.argmax(axis=1)]
    with one_blas_thread():
        full = openset.fit_head(bank_x, bank_y, classes)
    full_pred = [classes[i] for i in openset.head_logits(full, x[test]).argmax(axis=1)]
    full_unknown = openset.head_novelty(full, x[test]) > full.threshold

    results = {}
    for held in args.classes.split(","):
        h = classes.index(held)
        keep = bank_y != h
        remap = np.array([i - (i > h) for i in range(len(classes))])
        without_classes = tuple(c for c in classes if c != held)
        t0 = time.perf_counter()
        columns = [i for i in range(len(classes)) if i != h]
        with one_blas_thread():  # the shipped head without H's column, novelty refitted
            head = extend.extended_head(
                bank_x[keep], remap[bank_y[keep]], without_classes,
                shipped_w[:, columns], shipped_b[columns], free=(),
                **openset.novelty_settings(card),
            )  # fmt: skip
        refit_s = time.perf_counter() - t0
        without = work / f"without_{held}"
        onnx_head.write_model(
            base / card.file, card, head, without, name="genus-without-" + held.lower(),
            version="bench", bank=(bank_x[keep], remap[bank_y[keep]]),
        )  # fmt: skip
        pool = [items[i].path for i in np.flatnonzero((y == h) & train)]
        if len(pool) < args.images:  # Mesodinium has 16 training images: add validation ones
            pool += [items[i].path for i in np.flatnonzero((y == h) & (split == "val"))]
        chosen = pool[: args.images]
        teach = work / f"teach_{held}"
        _link_all(chosen, teach / held)
        learnt = work / f"learnt_{held}"
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "phytoscope", "learn", str(teach), "--model", str(without),
             "--out", str(learnt), "--json", "--no-progress"],
            capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        run = json.loads(proc.stdout)
        learnt_card = ModelCard.load(learnt / "model.onnx.json")
        logits, novelty = _run_onnx(learnt / "model.onnx", prepared[test], learnt_card)
        assert novelty is not None and learnt_card.novelty is not None
        pred = [learnt_card.class_names[i] for i in logits.argmax(axis=1)]
        unknown = novelty > learnt_card.novelty.threshold
        no_unknown = np.zeros(len(pred), bool)
        learnt_scores = _scores(pred, unknown, test_truth, held)
        shipped_scores = _scores(shipped_pred, no_unknown, test_truth, held)
        full_scores = _scores(full_pred, full_unknown, test_truth, held)
        row = next(c for c in run["classes"] if c["name"] == held)
        results[held] = {
            "images_taught": len(chosen),
            "learn_wall_s": round(wall, 1),
            "learn_reported_s": run["seconds"],
            "refit_without_s": round(refit_s, 1),
            "cross_validated_top1": row["top1"],
            "cross_validated_kept": row["coverage"],
            "bank_base_classes_top1_before": run["base_top1_before"],
            "bank_base_classes_top1_after": run["base_top1_after"],
            "test_learnt": learnt_scores,
            "test_shipped": shipped_scores,
            "test_bank_refit_with_all": full_scores,
            "others_drop_points_vs_shipped": round(
                100 * (shipped_scores["others_top1"] - learnt_scores["others_top1"]), 2
            ),
            "others_drop_points_vs_bank_refit": round(
                100 * (full_scores["others_top1"] - learnt_scores["others_top1"]), 2
            ),
        }
        print(held, json.dumps(results[held]), flush=True)

    facts = machine_facts()
    curve = None
    if not args.no_curve:
        folder = work / "curve"
        for name in ("Tripos", "Mesodinium"):
            _link_all([i.path for i in items if i.cls == name], folder / name)
        for name, rel in CURVE_EXTRA.items():
            _link_all(sorted((data / rel).iterdir()), folder / name)
        curve = examples_curve([folder], base)
    record = {
        "machine": f"{facts.cpu or platform.machine()}, {facts.logical_cpus} CPU(s)",
        "load_average_at_start": [round(v, 2) for v in load_before],
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "bank": bank_note,
        "bank_images": int(len(bank_x)),
        "test_split_images": int(test.sum()),
        "held_out": results,
        "curve": curve,
        "command": "python models/learn_benchmark.py --data ../shared/data",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learn_benchmark.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "learn_benchmark.md").write_text(markdown(record) + "\n")
    print(markdown(record))
    return 0


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f} %"


def markdown(record: dict) -> str:
    lines = [
        "# `phytoscope learn`: a class held out of the shipped model, learnt back",
        "",
        f"Machine: {record['machine']}; load average {record['load_average_at_start'][0]} at "
        f"start, {record['load_average_at_end'][0]} at the end (2 cores: above 2 = shared). "
        f"Bank: {record['bank']}, {record['bank_images']} embeddings. Test split: "
        f"{record['test_split_images']} images, never in the bank nor taught.",
        "",
        "| held out | images taught | learn wall | cv top-1 | test top-1 (learnt / shipped) | "
        "others' test top-1 (learnt / shipped / bank refit) | drop vs shipped | unknown (held out / others) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for held, r in record["held_out"].items():
        lt, sh, fu = r["test_learnt"], r["test_shipped"], r["test_bank_refit_with_all"]
        lines.append(
            f"| {held} | {r['images_taught']} | {r['learn_wall_s']} s | {_pct(r['cross_validated_top1'])} | "
            f"{_pct(lt['held_out_top1'])} / {_pct(sh['held_out_top1'])} (n={lt['held_out_n']}) | "
            f"{_pct(lt['others_top1'])} / {_pct(sh['others_top1'])} / {_pct(fu['others_top1'])} "
            f"(n={lt['others_n']}) | {r['others_drop_points_vs_shipped']:+.2f} points | "
            f"{_pct(lt['held_out_unknown'])} / {_pct(lt['others_unknown'])} |"
        )
    lines += [
        "",
        "learn wall: `phytoscope learn` as its own process, start to exit. Drop: shipped model's "
        "top-1 on the other classes' test images minus the learnt model's (positive = worse). "
        "Bank refit: every column refitted on the bank (what refitting the whole head would "
        "give: the reason learning keeps the base columns).",
        "",
        f"Reproduce: `{record['command']}`",
    ]
    if record.get("curve"):
        lines += ["", "## Images per class needed (`phytoscope learn --evaluate`)", ""]
        lines.append(curve_markdown(record["curve"]))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
