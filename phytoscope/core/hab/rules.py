"""HAB rule sets: thresholds as data (``resources/rules``), loaded and checked.

See :mod:`phytoscope.core.hab` for the decisions they encode.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from phytoscope.config import config_dir, resources_dir
from phytoscope.errors import ConfigError

COLUMNS = (
    "rule_set",
    "taxon",
    "rank",
    "syndrome",
    "level",
    "min_cells_per_l",
    "max_cells_per_l",
    "source",
)
RANKS = ("species", "genus", "group")
BOUNDARIES = (">=", ">")
NOT_MONITORED = "not monitored by this model"
DEFAULT_BELOW = "below_threshold"


def rules_dir() -> Path:
    return resources_dir() / "rules"


def user_overrides_path() -> Path:
    """Where a site's overrides are read from automatically, when the file exists."""
    return config_dir() / "rules" / "hab_thresholds.csv"


# -- rule sets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """One level of one taxon: from ``min_per_l`` (reached per the rule set's boundary) up."""

    level: str
    min_per_l: float
    max_per_l: float | None
    source: str = ""


@dataclass(frozen=True)
class RuleTaxon:
    """All bands of one taxon in one rule set, lowest threshold first."""

    taxon: str
    rank: str
    syndrome: str
    bands: tuple[Band, ...]

    @property
    def genus(self) -> str:
        return self.taxon.split()[0]

    def band_for(self, per_l: float, boundary: str = ">=") -> Band | None:
        """The highest band reached, or None below the lowest threshold."""
        reached = None
        for band in self.bands:
            if per_l > band.min_per_l or (boundary == ">=" and per_l == band.min_per_l):
                reached = band
        return reached

    def next_band(self, per_l: float, boundary: str = ">=") -> Band | None:
        current = self.band_for(per_l, boundary)
        higher = [b for b in self.bands if current is None or b.min_per_l > current.min_per_l]
        return higher[0] if higher else None


@dataclass(frozen=True)
class RuleSet:
    """A programme's thresholds. ``levels[0]`` is its word for "below every band"."""

    name: str
    title: str
    levels: tuple[str, ...]
    boundary: str
    version: str
    taxa: tuple[RuleTaxon, ...]
    reference: str = ""
    overridden: tuple[str, ...] = field(default=())
    """taxa whose rows came from a user overrides file"""

    @property
    def below_level(self) -> str:
        return self.levels[0]

    def severity(self, level: str) -> int:
        return self.levels.index(level)

    def taxon(self, name: str) -> RuleTaxon:
        for t in self.taxa:
            if t.taxon == name:
                return t
        raise KeyError(name)


def _read_csv(path: Path, what: str) -> list[dict[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from exc
    rows = list(csv.DictReader(io.StringIO(text)))
    return rows


def _threshold_rows(path: Path, what: str) -> list[dict[str, str]]:
    rows = _read_csv(path, what)
    if rows and set(COLUMNS) - set(rows[0]):
        raise ConfigError(
            f"{what} {path} lacks the columns {sorted(set(COLUMNS) - set(rows[0]))}; "
            f"it must have the header {','.join(COLUMNS)}"
        )
    for line, row in enumerate(rows, start=2):
        try:
            float(row["min_cells_per_l"])
            if row["max_cells_per_l"].strip():
                float(row["max_cells_per_l"])
        except (ValueError, AttributeError) as exc:
            raise ConfigError(
                f"{what} {path} line {line}: thresholds must be numbers ({exc})"
            ) from exc
        if row["rank"] not in RANKS:
            raise ConfigError(
                f"{what} {path} line {line}: rank must be one of {RANKS}, not {row['rank']!r}"
            )
    return rows


def _resolve_overrides(overrides_path: Path | str | None) -> Path | None:
    if overrides_path is not None:
        path = Path(overrides_path)
        if not path.exists():
            raise ConfigError(f"rule overrides file {path} does not exist")
        return path
    default = user_overrides_path()
    return default if default.exists() else None


def _metadata() -> dict[str, dict[str, str]]:
    path = rules_dir() / "rule_sets.csv"
    return {row["rule_set"]: row for row in _read_csv(path, "rule-set list")}


def available_rule_sets(overrides_path: Path | str | None = None) -> list[str]:
    """Names of the shipped rule sets, plus any new ones a user overrides file defines."""
    names = list(_metadata())
    overrides = _resolve_overrides(overrides_path)
    if overrides is not None:
        for row in _threshold_rows(overrides, "rule overrides"):
            if row["rule_set"] not in names:
                names.append(row["rule_set"])
    return names


def _digest(rows: Iterable[dict[str, str]]) -> str:
    canonical = json.dumps([[r[c] for c in COLUMNS] for r in rows], ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def all_taxa(overrides_path: Path | str | None = None) -> tuple[tuple[str, str], ...]:
    """``(taxon, rank)`` of every rule set, shipped and overridden, each once, in file order:
    what a model is checked against when its classes change (learn, train)."""
    rows = _threshold_rows(rules_dir() / "hab_thresholds.csv", "rule sets")
    overrides = _resolve_overrides(overrides_path)
    if overrides is not None:
        rows += _threshold_rows(overrides, "rule overrides")
    return tuple(dict.fromkeys((r["taxon"].strip(), r["rank"].strip()) for r in rows))


def load_rule_set(name: str, overrides_path: Path | str | None = None) -> RuleSet:
    """Read one rule set, with a site's overrides applied.

    Parameters
    ----------
    name
        A name from :func:`available_rule_sets` (e.g. ``"scotland_habreports"``).
    overrides_path
        CSV in the format of ``hab_thresholds.csv``. Default: the user's
        ``<config>/rules/hab_thresholds.csv`` if it exists. Rows of a (rule set, taxon) pair
        in the overrides replace every shipped row of that pair.
    """
    meta = _metadata()
    base = [
        r
        for r in _threshold_rows(rules_dir() / "hab_thresholds.csv", "rule sets")
        if r["rule_set"] == name
    ]
    overrides = _resolve_overrides(overrides_path)
    extra: list[dict[str, str]] = []
    if overrides is not None:
        extra = [r for r in _threshold_rows(overrides, "rule overrides") if r["rule_set"] == name]
    if not base and not extra:
        raise ConfigError(
            f"unknown rule set {name!r}; available: {', '.join(available_rule_sets(overrides_path))}"
        )
    replaced = {r["taxon"] for r in extra}
    rows = [r for r in base if r["taxon"] not in replaced] + extra

    by_taxon: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_taxon.setdefault(row["taxon"], []).append(row)
    taxa = []
    for taxon, group in by_taxon.items():
        ranks = {r["rank"] for r in group}
        if len(ranks) != 1:
            raise ConfigError(
                f"rule set {name}: taxon {taxon!r} is given two ranks {sorted(ranks)}"
            )
        bands = tuple(
            sorted(
                (
                    Band(
                        level=r["level"],
                        min_per_l=float(r["min_cells_per_l"]),
                        max_per_l=float(r["max_cells_per_l"])
                        if r["max_cells_per_l"].strip()
                        else None,
                        source=r["source"],
                    )
                    for r in group
                ),
                key=lambda b: b.min_per_l,
            )
        )
        if len({b.min_per_l for b in bands}) != len(bands):
            raise ConfigError(
                f"rule set {name}: taxon {taxon!r} has two levels starting at the same threshold"
            )
        taxa.append(
            RuleTaxon(taxon=taxon, rank=ranks.pop(), syndrome=group[0]["syndrome"], bands=bands)
        )

    info = meta.get(name)
    if info is not None:
        levels = tuple(info["levels"].split(";"))
        boundary = info["boundary"]
        title, dataset, reference = info["title"], info["version"], info["reference"]
    else:  # a rule set defined only by a user's overrides file
        ordered = sorted((b for t in taxa for b in t.bands), key=lambda b: b.min_per_l)
        levels = (DEFAULT_BELOW, *dict.fromkeys(b.level for b in ordered))
        boundary, title, dataset, reference = ">=", f"{name} (user-defined)", "user", str(overrides)
    if boundary not in BOUNDARIES:
        raise ConfigError(
            f"rule set {name}: boundary must be one of {BOUNDARIES}, not {boundary!r}"
        )
    for t in taxa:
        for b in t.bands:
            if b.level not in levels[1:]:
                raise ConfigError(
                    f"rule set {name}: level {b.level!r} of {t.taxon} is not one of its levels {levels[1:]}"
                )
    version = f"{name} {dataset} [{_digest(base)}]"
    if extra:
        version += f" + overrides {overrides.name if overrides else ''} [{_digest(extra)}]"
    return RuleSet(
        name=name,
        title=title,
        levels=levels,
        boundary=boundary,
        version=version,
        taxa=tuple(taxa),
        reference=reference,
        overridden=tuple(sorted(replaced)),
    )
