#!/usr/bin/env bash
# Build dist/phytoscope_<version>_<arch>.deb for amd64 (desktops) or arm64 (Jetson, JetPack 6).
#
# The package carries the phytoscope wheel, every Python dependency as wheels for the target
# (downloaded here with `pip download --only-binary=:all: --platform ... --python-version ...`),
# the shipped model and resources. Its postinst creates /opt/phytoscope/venv with
# --system-site-packages (so JetPack's TensorRT bindings are visible) and installs the wheels
# with --no-index: installation never needs a network.
#
# Usage: packaging/build_deb.sh [--arch amd64|arm64] [--python "3.10 3.11 3.12"]
#            [--constraints FILE|none] [--source head|worktree] [--out DIR] [--cache DIR]
#            [--offline] [--refresh] [--compression gzip|xz|none] [--glibc 2.35]
#
# Needs: bash, git, dpkg-deb (dpkg >= 1.19), python3 with pip; network for the first
# download of the wheels (cached in --cache, default ~/.cache/phytoscope-build/wheels).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$REPO/packaging
PYTHON=${PYTHON:-python3}

ARCH=""
PYTHONS=""
CONSTRAINTS=default
SOURCE="head"
OUT=$REPO/dist
CACHE=${PHYTOSCOPE_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/phytoscope-build/wheels}
OFFLINE=0
REFRESH=0
COMPRESSION=gzip  # wheels are already zip-compressed: xz saves <1% and costs minutes
GLIBC=2.35  # Ubuntu 22.04 / JetPack 6 (glibc 2.35): the oldest system the package supports
MAINTAINER=${PHYTOSCOPE_MAINTAINER:-"phytoscope developers <phytoscope@example.org>"}
HOMEPAGE=${PHYTOSCOPE_HOMEPAGE:-}

die() { echo "build_deb: $*" >&2; exit 1; }
log() { echo "build_deb: $*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --arch) ARCH=$2; shift 2 ;;
        --python) PYTHONS=${2//,/ }; shift 2 ;;
        --constraints) CONSTRAINTS=$2; shift 2 ;;
        --source) SOURCE=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --cache) CACHE=$2; shift 2 ;;
        --offline) OFFLINE=1; shift ;;
        --refresh) REFRESH=1; shift ;;
        --compression) COMPRESSION=$2; shift 2 ;;
        --glibc) GLIBC=$2; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

if [ -z "$ARCH" ]; then
    if command -v dpkg >/dev/null; then
        ARCH=$(dpkg --print-architecture)
    else
        case "$(uname -m)" in x86_64) ARCH=amd64 ;; aarch64) ARCH=arm64 ;; *) ARCH=unknown ;; esac
    fi
fi
case "$ARCH" in
    amd64) MACHINE=x86_64; : "${PYTHONS:=3.10 3.11 3.12}" ;;
    # JetPack 6 is Ubuntu 22.04 with Python 3.10; other arm64 systems: --python "3.10 3.11 3.12"
    arm64) MACHINE=aarch64; : "${PYTHONS:=3.10}" ;;
    *) die "--arch must be amd64 or arm64, not '$ARCH'" ;;
esac
if [ "$CONSTRAINTS" = default ]; then
    [ "$ARCH" = arm64 ] && CONSTRAINTS=$HERE/constraints/jetpack6.txt || CONSTRAINTS=none
fi
[ "$CONSTRAINTS" = none ] || [ -f "$CONSTRAINTS" ] || die "constraints file $CONSTRAINTS not found"
case "$COMPRESSION" in xz|gzip|none) ;; *) die "--compression must be xz, gzip or none" ;; esac

command -v dpkg-deb >/dev/null || die "dpkg-deb not found (apt-get install dpkg)"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip (set PYTHON=...)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/phytoscope-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SRC=$WORK/src
ROOT=$WORK/root
mkdir -p "$SRC" "$ROOT" "$OUT" "$CACHE"

# --- 1. the source: committed HEAD (default) or the tracked files as they are now ----------
COMMIT=unknown
if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
    COMMIT=$(git -C "$REPO" rev-parse --short HEAD)
    if [ "$SOURCE" = head ]; then
        git -C "$REPO" archive --format=tar HEAD | tar -x -C "$SRC"
        if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no)" ]; then
            log "note: building from HEAD ($COMMIT); uncommitted changes are not in the package"
        fi
    else
        (cd "$REPO" && git ls-files -z | while IFS= read -r -d '' f; do
            [ -e "$f" ] && printf '%s\0' "$f"; done | tar --null -T - -c) | tar -x -C "$SRC"
        COMMIT="$COMMIT+worktree"
    fi
    : "${SOURCE_DATE_EPOCH:=$(git -C "$REPO" log -1 --format=%ct)}"
else
    tar -C "$REPO" --exclude=.venv --exclude=dist --exclude=build --exclude=.git -c . | tar -x -C "$SRC"
fi
: "${SOURCE_DATE_EPOCH:=$(date +%s)}"
export SOURCE_DATE_EPOCH

# --- 2. the phytoscope wheel (without data files: /opt/phytoscope holds them) -------------
"$PYTHON" "$HERE/debtool.py" strip-data-files "$SRC/pyproject.toml"
APPWHEELS=$WORK/app
log "building the phytoscope wheel"
if [ "$OFFLINE" = 1 ]; then
    "$PYTHON" -m pip wheel --quiet --no-deps --no-build-isolation --no-index -w "$APPWHEELS" "$SRC" >&2
else
    "$PYTHON" -m pip wheel --quiet --no-deps -w "$APPWHEELS" "$SRC" >&2
fi
APPWHEEL=$(ls "$APPWHEELS"/phytoscope-*.whl)
VERSION=$(basename "$APPWHEEL" | cut -d- -f2)
log "phytoscope $VERSION ($COMMIT) for $ARCH, Python ${PYTHONS// /, }"

# --- 3. dependency wheels for each target Python, cached by what decides the resolution ---
PLATFORMS=()
minor=${GLIBC#2.}
for ((i = minor; i >= 17; i--)); do PLATFORMS+=(--platform "manylinux_2_${i}_${MACHINE}"); done
PLATFORMS+=(--platform "manylinux2014_${MACHINE}")

POOL=$ROOT/opt/phytoscope/wheels
mkdir -p "$POOL"
PYTAGS=()
for py in $PYTHONS; do
    tag=cp${py/./}
    PYTAGS+=("$tag")
    key=$( { "$PYTHON" "$HERE/debtool.py" requires "$APPWHEEL"; echo "$ARCH $py $GLIBC";
             [ "$CONSTRAINTS" = none ] || cat "$CONSTRAINTS"; } | sha256sum | cut -c1-16)
    dir=$CACHE/$ARCH-$tag-$key
    if [ "$REFRESH" = 1 ] || [ ! -f "$dir/lock.txt" ]; then
        [ "$OFFLINE" = 0 ] || die "no cached wheels for $ARCH $tag in $dir and --offline was given"
        log "downloading wheels for $ARCH $tag (glibc <= $GLIBC) into $dir"
        rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
        cargs=()
        [ "$CONSTRAINTS" = none ] || cargs=(--constraint "$CONSTRAINTS")
        "$PYTHON" -m pip download --quiet --only-binary=:all: --implementation cp \
            --python-version "$py" "${PLATFORMS[@]}" "${cargs[@]}" \
            --dest "$dir.tmp" "${APPWHEEL}[gui]" >&2 \
            || die "pip download failed for $ARCH $tag (network? see above)"
        rm -f "$dir.tmp"/phytoscope-*.whl
        "$PYTHON" "$HERE/debtool.py" check-wheels "$dir.tmp" "$ARCH" "$tag"
        "$PYTHON" "$HERE/debtool.py" lock "$dir.tmp" "$dir.tmp/lock.txt" phytoscope
        rm -rf "$dir" && mv "$dir.tmp" "$dir"
    else
        log "using cached wheels for $ARCH $tag ($dir)"
    fi
    cp "$dir/lock.txt" "$POOL/requirements-$tag.txt"
    for whl in "$dir"/*.whl; do
        [ -e "$POOL/${whl##*/}" ] || cp "$whl" "$POOL/"
    done
done
"$PYTHON" "$HERE/debtool.py" check-wheels "$POOL" "$ARCH" "${PYTAGS[@]}"
cp "$APPWHEEL" "$POOL/"

# --- 4. files: model, resources, launcher, desktop entry, icon, docs ----------------------
OPT=$ROOT/opt/phytoscope
mkdir -p "$OPT/models" "$OPT/resources"
# What a pip install ships too (pyproject's data-files): models, their cards, the model README;
# not the training split or evaluation scripts.
for f in "$SRC"/models/*.onnx "$SRC"/models/*.json "$SRC"/models/*.keras "$SRC"/models/*.md \
    "$SRC"/models/*.bank.npz; do  # the bank: `phytoscope learn` keeps the base classes by it
    [ -f "$f" ] && cp "$f" "$OPT/models/"
done
compgen -G "$OPT/models/*.onnx" >/dev/null \
    || log "WARNING: no models/*.onnx in the source: the package has no model to classify with"
# Screenshots are documentation for the README, not something the program reads.
tar -C "$SRC/resources" --exclude=./screenshots -c . | tar -x -C "$OPT/resources"

install -D -m 0755 "$HERE/debian/phytoscope-launcher" "$ROOT/usr/bin/phytoscope"
DESKTOP=$SRC/resources/phytoscope.desktop
[ -f "$DESKTOP" ] || DESKTOP=$HERE/debian/phytoscope.desktop
install -D -m 0644 "$DESKTOP" "$ROOT/usr/share/applications/phytoscope.desktop"
if [ -f "$SRC/resources/icons/phytoscope.svg" ]; then
    install -D -m 0644 "$SRC/resources/icons/phytoscope.svg" \
        "$ROOT/usr/share/icons/hicolor/scalable/apps/phytoscope.svg"
else
    log "WARNING: resources/icons/phytoscope.svg missing: no icon in the menu"
fi
for png in "$SRC"/resources/icons/phytoscope-*.png; do
    [ -e "$png" ] || continue
    size=${png##*-}; size=${size%.png}
    case "$size" in *[!0-9]*) continue ;; esac
    install -D -m 0644 "$png" "$ROOT/usr/share/icons/hicolor/${size}x${size}/apps/phytoscope.png"
done

DOC=$ROOT/usr/share/doc/phytoscope
mkdir -p "$DOC" "$ROOT/usr/share/man/man1" "$ROOT/usr/share/lintian/overrides"
DATE=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
YEAR=$(date -u +%Y -d "@$SOURCE_DATE_EPOCH")
subst() {
    sed -e "s|@VERSION@|$VERSION|g" -e "s|@ARCH@|$ARCH|g" -e "s|@COMMIT@|$COMMIT|g" \
        -e "s|@MAINTAINER@|$MAINTAINER|g" -e "s|@DATE@|$DATE|g" -e "s|@YEAR@|$YEAR|g" \
        -e "s|@PYTHONS@|Python ${PYTHONS// /, } on $ARCH|g" \
        -e "s|@SOURCE@|${HOMEPAGE:-the phytoscope git repository, commit $COMMIT}|g" \
        -e "s|@HOMEPAGE@|$HOMEPAGE|g" "$1"
}
subst "$HERE/debian/changelog.in" | gzip -9n > "$DOC/changelog.gz"
LICENSES=$WORK/licenses.txt
"$PYTHON" "$HERE/debtool.py" licenses "$POOL"/*.whl | sed 's/^/ /' > "$LICENSES"
subst "$HERE/debian/copyright.in" | sed -e "/@WHEEL_LICENSES@/{r $LICENSES" -e 'd}' > "$DOC/copyright"
subst "$HERE/debian/phytoscope.1" | gzip -9n > "$ROOT/usr/share/man/man1/phytoscope.1.gz"
install -m 0644 "$HERE/debian/phytoscope.lintian-overrides" "$ROOT/usr/share/lintian/overrides/phytoscope"

# --- 5. control data ------------------------------------------------------------------------
first=${PYTHONS%% *}; last=${PYTHONS##* }
next="${last%.*}.$(( ${last#*.} + 1 ))"
WHEEL_GLIBC=$("$PYTHON" "$HERE/debtool.py" glibc "$POOL"/*.whl)
# Libraries the wheels do not bundle (NEEDED entries of Qt's libraries and platform plugins
# in both PySide6 wheels, readelf -d / ldd, mapped with dpkg -S): Qt's xcb and wayland platform plugins, OpenGL/EGL, fonts, D-Bus and GLib
# (libglib2.0-0t64 since Ubuntu 24.04 / Debian 13). The same names exist on Ubuntu 22.04.
DEPENDS="python3 (>= $first), python3 (<< $next), python3-venv, libc6 (>= ${WHEEL_GLIBC:-$GLIBC})"
DEPENDS+=", libstdc++6, libgcc-s1, libglib2.0-0t64 | libglib2.0-0, libdbus-1-3"
DEPENDS+=", libfontconfig1, libfreetype6, libgl1, libegl1, libxkbcommon0, libxkbcommon-x11-0"
DEPENDS+=", libx11-6, libx11-xcb1, libxcb1, libxcb-cursor0, libxcb-glx0, libxcb-icccm4"
DEPENDS+=", libxcb-image0, libxcb-keysyms1, libxcb-randr0, libxcb-render-util0, libxcb-render0"
DEPENDS+=", libxcb-shape0, libxcb-shm0, libxcb-sync1, libxcb-xfixes0, libxcb-xkb1"
DEPENDS+=", libxcb-util1, libwayland-client0, libwayland-cursor0, libwayland-egl1, zlib1g, libzstd1"
# Qt 6.8's xcb plugin (the arm64 PySide6-Essentials 6.8.0.2) also links X session management.
DEPENDS+=", libice6, libsm6"
if [ "$ARCH" = arm64 ]; then
    # JetPack's TensorRT bindings for the system Python 3.10 (the venv sees them).
    RECOMMENDS="python3-libnvinfer"
    SUGGESTS="nvidia-jetpack"
else
    RECOMMENDS=""
    SUGGESTS="python3-libnvinfer"
fi
INSTALLED_SIZE=$(du -sk --apparent-size "$ROOT" | cut -f1)

mkdir -p "$ROOT/DEBIAN"
subst "$HERE/debian/control.in" \
    | sed -e "s#@DEPENDS@#$DEPENDS#" -e "s#@RECOMMENDS@#$RECOMMENDS#" -e "s#@SUGGESTS@#$SUGGESTS#" \
          -e "s|@INSTALLED_SIZE@|$INSTALLED_SIZE|" \
    | sed -e '/^[A-Za-z-]*: *$/d' > "$ROOT/DEBIAN/control"
for script in postinst prerm postrm; do
    install -m 0755 "$HERE/debian/$script" "$ROOT/DEBIAN/$script"
done

# Normalise modes and times (reproducible builds), then checksums.
find "$ROOT" -type d -exec chmod 0755 {} +
find "$ROOT" -type f ! -path "$ROOT/DEBIAN/*" ! -path "$ROOT/usr/bin/*" -exec chmod 0644 {} +
(cd "$ROOT" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) \
    > "$ROOT/DEBIAN/md5sums"
chmod 0644 "$ROOT/DEBIAN/md5sums" "$ROOT/DEBIAN/control"
find "$ROOT" -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

DEB=$OUT/phytoscope_${VERSION}_${ARCH}.deb
case "$COMPRESSION" in
    none) zargs=(-Znone) ;;
    gzip) zargs=(-Zgzip -z9) ;;
    xz) zargs=(-Zxz -z6) ;;
esac
log "writing $DEB"
dpkg-deb --root-owner-group "${zargs[@]}" --build "$ROOT" "$DEB" >&2
log "done: $DEB ($(du -h "$DEB" | cut -f1))"
echo "$DEB"
