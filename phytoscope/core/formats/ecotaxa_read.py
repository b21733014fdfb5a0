"""EcoTaxa exports read back as labelled training folders, so validated labels come home.

:func:`to_training_folders` reads what EcoTaxa exports (its TSV, or the zip it downloads:
TSVs at the root or per sample, images beside them or in sub-folders, UTF-8 with a BOM or
Latin-1, with or without the ``[t]``/``[f]`` type row, text quoted or not) and copies the
images of the objects a taxonomist validated into one sub-folder per category, the layout
``phytoscope train`` and ``learn`` read. The writing half is :mod:`.ecotaxa`.
"""

from __future__ import annotations

import csv
import io
import os
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from phytoscope.core.formats.ecotaxa import STAGE, STATUSES, VALIDATED, safe_name
from phytoscope.errors import ConfigError, SourceError, StorageError
from phytoscope.progress import Progress

_TYPE = re.compile(r"^\[[tfn]\]$")


@dataclass(frozen=True)
class EcotaxaObject:
    """One row of an EcoTaxa table, with where its image is."""

    object_id: str
    category: str
    status: str
    image: str
    """``img_file_name`` as written (relative to the TSV)"""
    tsv: str
    line: int


@dataclass
class ImportResult:
    out: Path
    copied: Counter = field(default_factory=Counter)
    """images copied per category folder"""
    existing: int = 0
    """images already in their folder (a re-run)"""
    ignored: Counter = field(default_factory=Counter)
    """rows not taken, per status ("predicted", "" for unclassified...)"""
    missing: list[str] = field(default_factory=list)
    """"<tsv> line <n>: <image>" of rows whose image is not in the export"""

    @property
    def images(self) -> int:
        return sum(self.copied.values()) + self.existing


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # EcoTaxa's "use Latin-1" export option


def read_table(text: str, tsv: str) -> Iterator[EcotaxaObject]:
    """The objects of one EcoTaxa TSV (its type row, if any, is recognised and skipped)."""
    reader = csv.reader(io.StringIO(text), delimiter="\t", quotechar='"')
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return
    need = {"object_id", "img_file_name"}
    if not need <= set(header):
        raise SourceError(
            f"{tsv}: not an EcoTaxa table (no {', '.join(sorted(need - set(header)))} column)"
        )
    for line, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        if line == 2 and all(_TYPE.match(v.strip()) for v in values if v.strip()):
            continue  # the [t]/[f] type row
        row = dict(zip(header, values, strict=False))
        yield EcotaxaObject(
            object_id=row.get("object_id", "").strip(),
            category=row.get("object_annotation_category", "").strip(),
            status=row.get("object_annotation_status", "").strip().lower(),
            image=row.get("img_file_name", "").strip(),
            tsv=tsv,
            line=line,
        )


def folder_name(category: str) -> str:
    """A category as a folder name on every system (``Chaetoceros<Chaetocerotaceae`` ->
    ``Chaetoceros_Chaetocerotaceae``)."""
    name = re.sub(r'[/\\:*?"<>|\x00-\x1f]+', "_", category).strip(" ._")
    return name or "unnamed"


class _Export:
    """Files of an export, a folder (a TSV's) or a zip, looked up by relative path."""

    def __init__(self, path: Path):
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        if path.suffix.lower() == ".zip":
            try:
                self.zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise SourceError(f"{path}: not a readable zip ({exc})") from exc
            self.names = {n for n in self.zip.namelist() if not n.endswith("/")}
            by_base: dict[str, list[str]] = {}
            for n in self.names:
                by_base.setdefault(PurePosixPath(n).name, []).append(n)
            self.by_base = by_base

    def tables(self) -> Iterator[tuple[str, str]]:
        if self.zip is None:
            yield self.path.name, _decode(self.path.read_bytes())
            return
        tsvs = sorted(n for n in self.names if n.lower().endswith((".tsv", ".txt")))
        if not tsvs:
            raise SourceError(f"{self.path}: no EcoTaxa table (.tsv) in the zip")
        for name in tsvs:
            yield name, _decode(self.zip.read(name))

    def open_image(self, tsv: str, image: str) -> bytes | None:
        if self.zip is None:
            beside = self.path.parent / image
            return beside.read_bytes() if beside.is_file() else None
        # EcoTaxa resolves images beside their TSV; general exports name them from the root
        for name in (str(PurePosixPath(tsv).parent / image), image):
            name = name.removeprefix("./")
            if name in self.names:
                return self.zip.read(name)
        same = self.by_base.get(PurePosixPath(image).name, [])
        return self.zip.read(same[0]) if len(same) == 1 else None

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def to_training_folders(
    export: Path | str,
    out: Path | str,
    statuses: Iterable[str] = (VALIDATED,),
    progress: Progress | None = None,
) -> ImportResult:
    """Copy the images of an EcoTaxa export's objects into ``out/<category>/``.

    Parameters
    ----------
    export
        An EcoTaxa TSV (images beside it) or the zip EcoTaxa exports.
    out
        The training folder (created); files already there are kept, so a second export
        adds to it.
    statuses
        Which objects come home: "validated" by default (a taxonomist confirmed them);
        "dubious" or "predicted" only when asked, since they are not confirmed labels.
    """
    export, out = Path(export), Path(out)
    wanted = {s.lower() for s in statuses}
    if not wanted <= set(STATUSES):
        raise ConfigError(f"status must be among {', '.join(STATUSES)}, not {sorted(wanted)}")
    if not export.exists():
        raise SourceError(f"{export}: no such file")
    progress = Progress.of(progress)
    result = ImportResult(out)
    source = _Export(export)
    try:
        objects = [o for name, text in source.tables() for o in read_table(text, name)]
        for n, obj in enumerate(objects, start=1):
            if obj.status not in wanted or not obj.category:
                result.ignored[obj.status] += 1
                continue
            data = source.open_image(obj.tsv, obj.image)
            if data is None:
                result.missing.append(f"{obj.tsv} line {obj.line}: {obj.image}")
                continue
            folder = out / folder_name(obj.category)
            target = folder / (
                safe_name(obj.object_id) + (PurePosixPath(obj.image).suffix or ".png")
            )
            try:
                folder.mkdir(parents=True, exist_ok=True)
                if target.exists():
                    result.existing += 1
                else:
                    tmp = target.with_name(target.name + ".tmp")
                    tmp.write_bytes(data)
                    os.replace(tmp, target)
                    result.copied[folder.name] += 1
            except OSError as exc:
                raise StorageError(
                    f"cannot write {target}: {exc.strerror or exc} (images copied so far stay)"
                ) from exc
            progress.update(STAGE, n, len(objects))
            progress.check(f"import stopped after {n} of {len(objects)} objects; copies kept")
    finally:
        source.close()
    return result


def import_summary(result: ImportResult) -> str:
    """A few lines saying what came home and what did not."""
    lines = [
        f"{result.images} images in {len(result.copied) or 'no'} categories under {result.out}"
    ]
    for category, n in sorted(result.copied.items()):
        lines.append(f"  {category:<32} {n:>6} new")
    if result.existing:
        lines.append(f"  {result.existing} already there (kept)")
    if result.ignored:
        lines.append(
            "  not taken: "
            + ", ".join(f"{n} {status or 'unclassified'}" for status, n in result.ignored.items())
        )
    if result.missing:
        lines.append(f"  {len(result.missing)} rows name an image missing from the export")
    return "\n".join(lines)
