"""Small helpers for ``packaging/build_deb.sh`` (standard library only, Python >= 3.10).

Sub-commands
------------
strip-data-files PYPROJECT
    Remove the ``[tool.setuptools.data-files]`` table from a copy of pyproject.toml: the
    .deb ships models and resources as dpkg-owned files under /opt/phytoscope, so the
    phytoscope wheel inside the package must not carry a second copy.
requires WHEEL
    Print the wheel's ``Requires-Dist`` lines (the input of the wheel-cache key).
lock DIR OUT [SKIP_NAME]
    Write ``name==version`` for every wheel in DIR (but SKIP_NAME) to OUT: the exact set
    ``pip download`` resolved for one Python, installed by the postinst with --no-index.
glibc WHEEL...
    Print the newest glibc any of the wheels needs (each wheel needs the oldest of its
    manylinux tags), e.g. ``2.34``; empty when no wheel has a manylinux tag.
check-wheels DIR ARCH PYTAG...
    Fail unless every binary wheel in DIR matches the target machine and one of the Python
    tags (cp310, abi3, py3...): a wrong-architecture wheel in the package is a silent failure
    on the device, so the build stops instead.
licenses WHEEL...
    Print one ``name version: license`` line per wheel, from its METADATA.
"""

from __future__ import annotations

import re
import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path

MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}


def _name_version(wheel: Path) -> tuple[str, str]:
    name, version = wheel.name.split("-")[:2]
    return name, version


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        member = next(
            n for n in zf.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1
        )
        text = zf.read(member).decode("utf-8", "replace")
    return HeaderParser().parsestr(text)


def strip_data_files(pyproject: Path) -> None:
    text = pyproject.read_text()
    stripped = re.sub(r"(?ms)^\[tool\.setuptools\.data-files\]\n.*?(?=^\[|\Z)", "", text)
    pyproject.write_text(stripped)


def requires(wheel: Path) -> None:
    for line in sorted(_metadata(wheel).get_all("Requires-Dist") or []):
        print(line)


def lock(folder: Path, out: Path, skip: str = "") -> None:
    lines = sorted(
        f"{_canonical(name)}=={version}"
        for name, version in map(_name_version, folder.glob("*.whl"))
        if _canonical(name) != _canonical(skip)
    )
    if not lines:
        raise SystemExit(f"debtool: no wheels in {folder}")
    out.write_text("\n".join(lines) + "\n")


def _platform_tags(wheel: Path) -> list[str]:
    return wheel.name[: -len(".whl")].split("-")[-1].split(".")


def _min_glibc(wheel: Path) -> tuple[int, int] | None:
    found = []
    for tag in _platform_tags(wheel):
        m = re.match(r"manylinux_(\d+)_(\d+)_", tag)
        if m:
            found.append((int(m.group(1)), int(m.group(2))))
        elif tag.startswith("manylinux2014"):
            found.append((2, 17))
        elif tag.startswith("manylinux2010"):
            found.append((2, 12))
        elif tag.startswith("manylinux1"):
            found.append((2, 5))
    return min(found) if found else None


def glibc(wheels: list[Path]) -> None:
    needs = [g for g in map(_min_glibc, wheels) if g]
    if needs:
        major, minor = max(needs)
        print(f"{major}.{minor}")


def check_wheels(folder: Path, arch: str, pytags: list[str]) -> None:
    machine = MACHINES[arch]
    bad = []
    for wheel in sorted(folder.glob("*.whl")):
        python, abi = wheel.name[: -len(".whl")].split("-")[-3:-1]
        plats = _platform_tags(wheel)
        if plats != ["any"] and not all(p.endswith("_" + machine) for p in plats):
            bad.append(f"{wheel.name}: platform is not {machine}")
        if abi not in ("none", "abi3") and not any(t in pytags for t in python.split(".")):
            bad.append(f"{wheel.name}: built for {python}, not one of {' '.join(pytags)}")
    if bad:
        raise SystemExit("debtool: wrong wheels for the target:\n  " + "\n  ".join(bad))


def licenses(wheels: list[Path]) -> None:
    for wheel in sorted(wheels, key=lambda w: w.name.lower()):
        meta = _metadata(wheel)
        lic = meta.get("License-Expression") or ""
        if not lic:
            classifiers = [
                c.split(" :: ")[-1]
                for c in meta.get_all("Classifier") or []
                if c.startswith("License ::")
            ]
            license_field = (meta.get("License") or "").strip()
            lic = "; ".join(classifiers) or (license_field.splitlines()[0] if license_field else "")
        name, version = _name_version(wheel)
        print(f"{name} {version}: {lic or 'see the wheel metadata'}")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "strip-data-files":
        strip_data_files(Path(args[0]))
    elif cmd == "requires":
        requires(Path(args[0]))
    elif cmd == "lock":
        lock(Path(args[0]), Path(args[1]), args[2] if len(args) > 2 else "")
    elif cmd == "glibc":
        glibc([Path(a) for a in args])
    elif cmd == "check-wheels":
        check_wheels(Path(args[0]), args[1], args[2:])
    elif cmd == "licenses":
        licenses([Path(a) for a in args])
    else:
        print(f"debtool: unknown command {cmd!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
