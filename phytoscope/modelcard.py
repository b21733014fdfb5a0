"""Model cards: the JSON file beside every model that says how to feed it and what it knows.

A card is the single source of truth for pre-processing (input size, colour handling,
normalisation) and post-processing (class names, per-class confidence thresholds), so the
trainer, every backend and the benchmark cannot disagree. A model whose file hash or tensor
shapes differ from its card is refused: a silently swapped model would give confident,
wrong counts.

Layout: ``models/<file>`` with ``models/<file>.json`` beside it (``genus.onnx`` and
``genus.onnx.json``), so an ONNX file and a Keras file of the same model never share a card.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phytoscope.errors import ModelError

SCHEMA_VERSION = 3
"""2 added the ``novelty`` section, 3 its ``frame_threshold``. A card is written with the
lowest schema that holds it (no novelty: 1; novelty without a frame threshold: 2), so older
phytoscope versions keep reading what they can apply, and refuse, saying "upgrade", a card
whose "unknown" rule they would otherwise drop or misread."""
FORMATS = ("onnx", "keras", "tensorrt")
UNKNOWN = "unknown"


@dataclass(frozen=True)
class InputSpec:
    """How an image becomes the network's input tensor.

    ``colour="grey3"``: convert to grey-scale, then repeat into 3 channels (microscopes
    differ in colour balance; the study trained on grey images). ``resize="letterbox"``:
    keep the aspect ratio and pad to a square with the median of the image border, so a
    long thin diatom chain is not squashed. Pixel values become ``value * scale + offset``.
    """

    height: int = 128
    width: int = 128
    channels: int = 3
    layout: str = "NHWC"
    dtype: str = "float32"
    colour: str = "grey3"
    resize: str = "letterbox"
    scale: float = 1.0 / 127.5
    offset: float = -1.0

    def batch_shape(self, n: int) -> tuple[int, ...]:
        if self.layout == "NHWC":
            return (n, self.height, self.width, self.channels)
        return (n, self.channels, self.height, self.width)


@dataclass(frozen=True)
class ClassInfo:
    """One output class. ``name`` is spelled as the HAB rule sets spell taxa."""

    name: str
    rank: str = "genus"
    threshold: float = 0.0
    hab: bool = False
    chain_forming: bool = False
    group: str | None = None


@dataclass(frozen=True)
class NoveltySpec:
    """The open-set score a model computes in its own graph, beside the logits.

    Every engine returns it as the output named ``output``; an organism whose score is
    above ``threshold`` is "unknown" (higher means less like every training class),
    whatever its softmax says, so the command line, the window and every backend apply
    the same rule. ``chosen`` says in words how the threshold was picked (on which data,
    for which target); ``details`` holds the method's own facts (feature layers, measured
    rates) for the record.
    """

    method: str
    threshold: float
    output: str = "novelty"
    chosen: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    frame_threshold: float | None = None
    """The threshold for organisms cut out of whole frames by the segmentation
    (``Roi.segmented``; an IFCB ROI has a box but is the instrument's own crop): such pieces
    carry their frame's background and neighbours, so their scores run
    higher than those of the single-organism crops ``threshold`` was chosen on; this one is
    chosen by the same coverage rule on validation frames' segments. None: ``threshold``."""

    def threshold_for(self, from_frame: bool) -> float:
        """The threshold that applies to an organism cut from a whole frame or not."""
        if from_frame and self.frame_threshold is not None:
            return self.frame_threshold
        return self.threshold


@dataclass(frozen=True)
class ModelCard:
    name: str
    version: str
    file: str
    format: str
    precision: str
    sha256: str
    classes: tuple[ClassInfo, ...]
    input: InputSpec = field(default_factory=InputSpec)
    architecture: str = "MobileNetV2 alpha=1.0"
    output: str = "logits"
    novelty: NoveltySpec | None = None
    """None: the model has no open-set score, only the per-class confidence thresholds."""
    training: dict[str, Any] = field(default_factory=dict)
    accuracy: dict[str, Any] = field(default_factory=dict)
    not_recognised: tuple[str, ...] = ()
    notes: str = ""
    path: Path | None = field(default=None, compare=False)
    """Where the card was read from (not stored in the JSON)."""

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def model_path(self) -> Path:
        if self.path is None:
            raise ModelError(f"model card {self.name!r} was not loaded from a file")
        return self.path.parent / self.file

    @property
    def label(self) -> str:
        """Short name for logs and the status bar, e.g. ``phytoscope-genus 1.0.0 onnx/int8``."""
        return f"{self.name} {self.version} {self.format}/{self.precision}"

    # -- reading and writing -------------------------------------------------------------

    @classmethod
    def from_dict(cls, raw: dict[str, Any], path: Path | None = None) -> ModelCard:
        where = f" in {path}" if path else ""
        try:
            if raw.get("schema", SCHEMA_VERSION) > SCHEMA_VERSION:
                raise ModelError(
                    f"model card{where} uses schema {raw['schema']}; this phytoscope reads "
                    f"schema {SCHEMA_VERSION}: upgrade phytoscope"
                )
            classes = tuple(ClassInfo(**c) for c in raw["classes"])
            novelty = raw.get("novelty")
            card = cls(
                name=raw["name"],
                version=str(raw["version"]),
                file=raw["file"],
                format=raw["format"],
                precision=raw.get("precision", "fp32"),
                sha256=raw["sha256"],
                classes=classes,
                input=InputSpec(**raw.get("input", {})),
                architecture=raw.get("architecture", "MobileNetV2 alpha=1.0"),
                output=raw.get("output", "logits"),
                novelty=NoveltySpec(**novelty) if novelty else None,
                training=raw.get("training", {}),
                accuracy=raw.get("accuracy", {}),
                not_recognised=tuple(raw.get("not_recognised", ())),
                notes=raw.get("notes", ""),
                path=path,
            )
        except ModelError:
            raise
        except (KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"model card{where} is incomplete or malformed ({exc!r})") from exc
        if card.format not in FORMATS:
            raise ModelError(
                f"model card{where}: format must be one of {FORMATS}, not {card.format!r}"
            )
        if card.novelty is not None:
            for key in ("threshold", "frame_threshold"):
                value = getattr(card.novelty, key)
                if key == "frame_threshold" and value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ModelError(f"model card{where}: novelty.{key} must be a number")
                if not math.isfinite(value):
                    raise ModelError(f"model card{where}: novelty.{key} must be finite")
        if not card.classes:
            raise ModelError(f"model card{where} lists no classes")
        if len(set(card.class_names)) != len(card.classes):
            raise ModelError(f"model card{where} lists a class twice")
        return card

    @classmethod
    def load(cls, path: Path | str) -> ModelCard:
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ModelError(f"model card {path} does not exist") from exc
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read model card {path}: {exc}") from exc
        return cls.from_dict(raw, path=path)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("path")
        out["classes"] = [asdict(c) for c in self.classes]
        out["not_recognised"] = list(self.not_recognised)
        if self.novelty is None:
            out.pop("novelty")
        return {"schema": self.schema, **out}

    @property
    def schema(self) -> int:
        """The lowest card schema that holds this card (:data:`SCHEMA_VERSION`)."""
        if self.novelty is None:
            return 1
        return 2 if self.novelty.frame_threshold is None else 3

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    # -- checks --------------------------------------------------------------------------

    def verify_file(self) -> Path:
        """Return the model file after checking it exists and its sha256 matches the card."""
        model = self.model_path
        if not model.exists():
            raise ModelError(f"model file {model} named by card {self.path} is missing")
        actual = sha256_of(model)
        if actual != self.sha256:
            raise ModelError(
                f"model file {model} does not match its card (sha256 {actual[:12]}… expected "
                f"{self.sha256[:12]}…): the file was changed or replaced; reinstall the model "
                "or re-export it with `phytoscope export`"
            )
        return model

    def check_io_shapes(self, input_shape: tuple[Any, ...], num_outputs: int | None) -> None:
        """Refuse a model whose tensors disagree with the card (dynamic dims pass)."""
        expected = self.input.batch_shape(-1)[1:]
        got = tuple(input_shape[1:])
        if len(got) != len(expected) or any(
            isinstance(g, int) and g > 0 and g != e for g, e in zip(got, expected, strict=True)
        ):
            raise ModelError(
                f"{self.model_path.name}: input shape {tuple(input_shape)} does not match the card's "
                f"{self.input.layout} {expected}"
            )
        if isinstance(num_outputs, int) and num_outputs > 0 and num_outputs != self.num_classes:
            raise ModelError(
                f"{self.model_path.name}: {num_outputs} outputs but the card lists "
                f"{self.num_classes} classes"
            )


def card_path_for(model_file: Path) -> Path:
    """Where the card of a model file lives: the file name plus ``.json``."""
    return model_file.with_name(model_file.name + ".json")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


MODEL_SUFFIXES = (".onnx", ".keras", ".h5", ".engine", ".plan", ".savedmodel")


def is_card_path(path: Path) -> bool:
    """A card is named after its model (``genus.onnx.json``); other JSON files in a model
    folder (evaluation summaries, size comparisons) are not cards."""
    model = path.with_suffix("")
    return path.suffix == ".json" and (model.suffix.lower() in MODEL_SUFFIXES or model.exists())


def discover(folder: Path) -> list[ModelCard]:
    """All cards in a folder (a broken card raises: it should be fixed, not hidden)."""
    if not folder.is_dir():
        return []
    return [ModelCard.load(p) for p in sorted(folder.glob("*.json")) if is_card_path(p)]


def select(folder: Path, fmt: str, precision: str = "fp32") -> ModelCard:
    """The card for a format and precision in a model folder, or a clear "no model" error."""
    cards = discover(folder)
    if not cards:
        raise ModelError(
            f"no model installed: {folder} holds no model card (*.json). Train one with "
            "`phytoscope train`, or pass --model PATH to a model card"
        )
    for card in cards:
        if card.format == fmt and card.precision == precision:
            return card
    have = ", ".join(f"{c.format}/{c.precision}" for c in cards)
    raise ModelError(f"no {fmt}/{precision} model in {folder} (it has: {have})")


def resolve(model: Path | str | None, fmt: str, precision: str, default_dir: Path) -> ModelCard:
    """Find the card a command should use: a card path, a model file, a folder, or the default."""
    if model is None:
        return select(default_dir, fmt, precision)
    path = Path(model)
    if path.is_dir():
        return select(path, fmt, precision)
    if path.suffix == ".json":
        return ModelCard.load(path)
    card_path = card_path_for(path)
    if path.exists() and card_path.exists():
        return ModelCard.load(card_path)
    if path.exists():
        raise ModelError(
            f"{path} has no model card beside it ({card_path.name}); phytoscope needs one"
        )
    raise ModelError(f"model {path} does not exist")
