"""The .deb, end to end: build, lintian, install with dpkg, run offline, remove, purge.

Tier 6 of the test plan. The package is built from this checkout's tracked files by
``packaging/build_deb.sh`` (wheels cached under ``~/.cache/phytoscope-build/wheels``, so only
the first run downloads them). The tests run on a clean checkout (CI's clean clone) or with
PHYTOSCOPE_TEST_DEB=1 and skip on a working tree with uncommitted changes.

The test command never changes the machine it runs on. lintian is used when it is
installed and the check skips (saying so) when it is not; nothing is apt-installed on the
host. The package is installed, run, reinstalled, removed and purged inside a throw-away
root (tests/packaging/throwaway.py: an overlay of ``/`` in a private mount namespace, as
root), never on the host: missing system dependencies are apt-installed *into that
copy*, and the last test checks that the host's package list (``dpkg-query -W``) and
/opt, /usr/bin are as they were before the module ran. Where no throw-away root can be
made (not root, or a container without mount namespaces) the install tests skip with the
reason; PHYTOSCOPE_REQUIRE_DEB_INSTALL=1 (for a CI job that must run them) turns that skip
into a failure. The installed command runs inside a network namespace (``unshare --net``)
where the kernel allows one, so "offline" is enforced, not assumed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.packaging import throwaway
from tests.packaging.throwaway import ThrowawayRoot, host_packages

pytestmark = [pytest.mark.deb, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "packaging" / "build_deb.sh"
PREFIX = Path("/opt/phytoscope")
LAUNCHER = Path("/usr/bin/phytoscope")
CACHE = Path(
    os.environ.get("PHYTOSCOPE_WHEEL_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "phytoscope-build"
    / "wheels"
)
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _deb_tests_wanted():
    """Run on clean checkouts (CI's clean clone) or when asked; a dirty tree skips them.

    They build and install a package (minutes of CPU); on a working tree with uncommitted
    changes, where several people run the suite over and over, they would package half-done
    work. ``PHYTOSCOPE_TEST_DEB=1`` runs them anyway, ``=0`` always skips them.
    """
    flag = os.environ.get("PHYTOSCOPE_TEST_DEB", "")
    if flag == "0":
        pytest.skip("PHYTOSCOPE_TEST_DEB=0")
    if flag == "1" or shutil.which("git") is None:
        return
    status = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True, text=True
    )
    if status.returncode == 0 and status.stdout.strip():
        pytest.skip(
            "uncommitted changes in the checkout: the .deb tests run on clean checkouts (as in CI); "
            "PHYTOSCOPE_TEST_DEB=1 runs them here"
        )


def run(cmd, *, check=True, timeout=900, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def host_arch() -> str | None:
    if shutil.which("dpkg") is None:
        return None
    return run(["dpkg", "--print-architecture"]).stdout.strip()


def pypi_reachable() -> bool:
    try:
        with socket.create_connection(("pypi.org", 443), timeout=5):
            return True
    except OSError:
        return False


def cached(arch: str) -> bool:
    return any(CACHE.glob(f"{arch}-cp3*/lock.txt"))


def build_deb(arch: str, out: Path) -> Path:
    """Build the package for ``arch`` into ``out``, or skip saying what is missing."""
    for tool in ("dpkg-deb", "git"):
        if shutil.which(tool) is None:
            pytest.skip(
                f"{tool} not found: the .deb cannot be built here (apt-get install dpkg git)"
            )
    args = ["bash", str(BUILD), "--arch", arch, "--out", str(out), "--source", "worktree"]
    if not pypi_reachable():
        if not cached(arch):
            pytest.skip(
                f"PyPI unreachable and no cached {arch} wheels under {CACHE}: cannot vendor the dependencies"
            )
        args.append("--offline")
    env = dict(os.environ, PYTHON=sys.executable)
    cache = CACHE
    while not cache.exists():
        cache = cache.parent
    if not os.access(cache, os.W_OK):  # e.g. a user without a home: download into out/
        env["PHYTOSCOPE_WHEEL_CACHE"] = str(out / "wheel-cache")
    proc = run(args, env=env, timeout=1800)
    deb = Path(proc.stdout.strip().splitlines()[-1])
    assert (
        deb.is_file() and deb.name.startswith("phytoscope_") and deb.name.endswith(f"_{arch}.deb")
    ), proc.stderr
    return deb


def field(deb: Path, name: str) -> str:
    return run(["dpkg-deb", "-f", str(deb), name]).stdout.strip()


def contents(deb: Path) -> list[str]:
    lines = run(["dpkg-deb", "-c", str(deb)]).stdout.splitlines()
    return [line.split(None, 5)[5].split(" -> ")[0].removeprefix("./") for line in lines]


def lintian(deb: Path) -> None:
    """lintian when installed; never installed by the test (that would change the machine)."""
    if shutil.which("lintian") is None:
        pytest.skip(
            "lintian is not installed, so the package is not linted here (apt-get install "
            "lintian; the test never installs it itself)"
        )
    proc = run(
        ["lintian", "--fail-on", "error,warning", "--tag-display-limit", "0", str(deb)], check=False
    )
    problems = [line for line in proc.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert proc.returncode == 0 and not problems, "\n".join(problems) or proc.stderr


def wheel_tags(name: str) -> tuple[str, str, list[str]]:
    python, abi, platform = name[: -len(".whl")].split("-")[-3:]
    return python, abi, platform.split(".")


def check_wheel_pool(files: list[str], arch: str, pytags: list[str]) -> None:
    """Every lock entry has a wheel for its Python and the target machine; no stray wheels."""
    machine = MACHINES[arch]
    wheels = [
        f.rsplit("/", 1)[1]
        for f in files
        if f.startswith("opt/phytoscope/wheels/") and f.endswith(".whl")
    ]
    for wheel in wheels:
        python, abi, plats = wheel_tags(wheel)
        assert plats == ["any"] or all(p.endswith("_" + machine) for p in plats), (
            f"{wheel} is not for {machine}"
        )
        if abi not in ("none", "abi3"):
            assert python in pytags, f"{wheel} is for {python}, the package supports {pytags}"
    locks = sorted(
        f.rsplit("/", 1)[1] for f in files if re.search(r"wheels/requirements-cp3\d+\.txt$", f)
    )
    assert locks == sorted(f"requirements-{t}.txt" for t in pytags)
    assert any(w.startswith("phytoscope-") for w in wheels), (
        "the phytoscope wheel itself is missing"
    )


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_resolves(lock_text: str, wheels: list[str], pytag: str) -> None:
    for line in lock_text.split():
        name, version = line.split("==")
        ok = False
        for wheel in wheels:
            wname, wversion = wheel.split("-")[:2]
            python, abi, _ = wheel_tags(wheel)
            if canonical(wname) == name and wversion == version:
                ok = ok or abi in ("none", "abi3") or pytag in python.split(".")
        assert ok, f"{line} has no wheel for {pytag}"


def has_model() -> bool:
    return any((REPO / "models").glob("*.onnx"))


def sample_images() -> Path:
    return PREFIX / "resources" / "samples" / "images"


# -- the amd64 (host) package -----------------------------------------------------------------


@pytest.fixture(scope="module")
def host_deb(tmp_path_factory) -> Path:
    arch = host_arch()
    if arch not in MACHINES:
        pytest.skip(f"the .deb is built for amd64 or arm64 hosts (this one: {arch or 'no dpkg'})")
    return build_deb(arch, tmp_path_factory.mktemp("deb"))


@pytest.fixture(scope="module")
def host_tree(host_deb, tmp_path_factory) -> Path:
    """The package's files unpacked (no root needed)."""
    tree = tmp_path_factory.mktemp("tree")
    run(["dpkg-deb", "-x", str(host_deb), str(tree)])
    return tree


def test_host_package_passes_lintian(host_deb):
    lintian(host_deb)


def test_host_package_contents(host_deb):
    arch = field(host_deb, "Architecture")
    files = contents(host_deb)
    for required in (
        "usr/bin/phytoscope",
        "usr/share/applications/phytoscope.desktop",
        "usr/share/icons/hicolor/scalable/apps/phytoscope.svg",
        "usr/share/doc/phytoscope/copyright",
        "usr/share/doc/phytoscope/changelog.gz",
        "usr/share/man/man1/phytoscope.1.gz",
        "opt/phytoscope/resources/samples/",
    ):
        assert required in files, f"{required} missing from the package"
    for pattern in ("*.onnx", "*.json", "*.keras", "*.bank.npz"):
        for model in (REPO / "models").glob(pattern):
            assert f"opt/phytoscope/models/{model.name}" in files
    assert not [f for f in files if f.startswith("opt/phytoscope/venv")], (
        "the venv is made by the postinst"
    )
    pytags = ["cp310", "cp311", "cp312"] if arch == "amd64" else ["cp310"]
    check_wheel_pool(files, arch, pytags)
    depends = field(host_deb, "Depends")
    for dep in ("python3 (>= 3.10)", "python3-venv", "libegl1", "libxcb-cursor0"):
        assert dep in depends
    assert "tensorflow" not in " ".join(files).lower(), "TensorFlow is not vendored (too big)"


def test_host_package_wheels_install_offline_for_each_python(host_tree):
    """Each requirements-cpXY.txt names only versions whose wheels are in the pool."""
    pool = host_tree / "opt/phytoscope/wheels"
    wheels = [w.name for w in pool.glob("*.whl")]
    for lock in pool.glob("requirements-cp3*.txt"):
        lock_resolves(lock.read_text(), wheels, lock.stem.removeprefix("requirements-"))
    # The phytoscope wheel carries no second copy of models/resources: /opt/phytoscope has them.
    (app,) = pool.glob("phytoscope-*.whl")
    with zipfile.ZipFile(app) as zf:
        assert not [n for n in zf.namelist() if ".data/" in n], "data files in the phytoscope wheel"


# -- install, run offline, reinstall, remove, purge: in a throw-away root -------------------


HOST_PATHS = (PREFIX, LAUNCHER, Path("/usr/share/applications/phytoscope.desktop"))


@pytest.fixture(scope="module", autouse=True)
def host_before():
    """The host's package set and phytoscope paths before this module installed anything."""
    return host_packages(), {p: p.exists() for p in HOST_PATHS}


def offline_prefix(root: ThrowawayRoot) -> list[str]:
    """``unshare --net`` where the kernel lets us: the command then has no network at all."""
    if root.run(["unshare", "--net", "true"]).returncode == 0:
        return ["unshare", "--net"]
    return []


def in_root(root: ThrowawayRoot, cmd: list[str], *, check=True, env=None, timeout=900):
    proc = root.run([str(c) for c in cmd], env=env, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(
            f"(in the throw-away root) {' '.join(map(str, cmd))} exited {proc.returncode}\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def status(root: ThrowawayRoot, package: str) -> str:
    proc = root.run(["dpkg-query", "-W", "-f=${db:Status-Status}", package])
    return proc.stdout.strip() if proc.returncode == 0 else ""


def ensure_depends(root: ThrowawayRoot, deb: Path) -> None:
    """Install missing system dependencies with apt, into the throw-away root only."""
    missing = []
    for clause in field(deb, "Depends").split(","):
        alternatives = [alt.split()[0] for alt in clause.split("|")]
        if not any(status(root, a) == "installed" for a in alternatives):
            missing.append(alternatives)
    if not missing:
        return
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive"}
    names = []
    for alternatives in missing:
        policy = in_root(root, ["apt-cache", "policy", *alternatives], check=False).stdout
        candidates = [
            a
            for a in alternatives
            if re.search(
                rf"^{re.escape(a)}:\n\s+Installed: .*\n\s+Candidate: (?!\(none\))", policy, re.M
            )
        ]
        names.append(candidates[0] if candidates else alternatives[0])
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *names]
    proc = in_root(root, install, env=env, check=False)
    if proc.returncode != 0:
        in_root(root, ["apt-get", "update", "-qq"], env=env, check=False)
        proc = in_root(root, install, env=env, check=False)
    if proc.returncode != 0:
        pytest.skip(
            f"system packages {names} are missing and apt-get cannot install them (into the "
            f"throw-away root): {proc.stderr[-500:]}"
        )


def phytoscope_paths(root: ThrowawayRoot) -> set[str]:
    """Every path outside home folders whose name mentions phytoscope (what purge must remove)."""
    found = set()
    for top in ("/opt", "/usr/bin", "/usr/share", "/usr/lib", "/etc", "/var/lib/dpkg/info"):
        base = root.path(top)
        for folder, dirs, files in os.walk(base):
            for name in dirs + files:
                if "phytoscope" in name:
                    found.add("/" + str(Path(folder, name).relative_to(root.path("/"))))
            dirs[:] = [d for d in dirs if "phytoscope" not in d]
    return found


@pytest.fixture(scope="module")
def installed_deb(host_deb, host_before, tmp_path_factory):
    """dpkg -i the package offline inside a throw-away root; the root goes afterwards."""
    why = throwaway.unavailable()
    if why:
        if os.environ.get("PHYTOSCOPE_REQUIRE_DEB_INSTALL") == "1":
            pytest.fail(f"PHYTOSCOPE_REQUIRE_DEB_INSTALL=1 but {why}")
        pytest.skip(f"the .deb is only ever installed into a throw-away root, and {why}")
    # made before the root: files the host creates later may not show through the overlay
    home = tmp_path_factory.mktemp("home")
    user_data = home / ".local/share/phytoscope"
    user_data.mkdir(parents=True)
    (user_data / "keep.txt").write_text("user data: never removed by the package\n")
    with ThrowawayRoot(tmp_path_factory.mktemp("root")) as root:
        for tool in ("dpkg", "dpkg-query"):
            if in_root(root, ["sh", "-c", f"command -v {tool}"], check=False).returncode:
                pytest.skip(f"{tool} not found")
        if status(root, "phytoscope"):  # the host has one: remove it from the copy only
            in_root(root, ["dpkg", "--purge", "phytoscope"])
        in_root(root, ["rm", "-rf", str(PREFIX)])
        ensure_depends(root, host_deb)
        state = {
            "root": root,
            "home": root.path(home),  # where the test reads what ran in the root wrote
            "before": phytoscope_paths(root),
            "offline": offline_prefix(root),
            "env": {
                "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME": str(home),
                "LC_ALL": "C.UTF-8",
                "QT_QPA_PLATFORM": "offscreen",
            },
        }
        # PIP_NO_INDEX is also set inside the postinst; here the whole dpkg run has no network.
        proc = in_root(root, [*state["offline"], "dpkg", "-i", str(host_deb)])
        state["install_log"] = proc.stdout + proc.stderr
        yield state


def phytoscope(state, *args, check=True) -> subprocess.CompletedProcess:
    return in_root(
        state["root"],
        [*state["offline"], str(LAUNCHER), *args],
        env=state["env"],
        check=check,
        timeout=600,
    )


def test_install_creates_the_venv_offline(installed_deb, host_before):
    root = installed_deb["root"]
    for path, existed in host_before[1].items():  # installed in the copy, not on the host
        assert existed or not path.exists(), f"{path} appeared on the host"
    assert "creating /opt/phytoscope/venv" in installed_deb["install_log"]
    cfg = root.path(PREFIX / "venv/pyvenv.cfg").read_text()
    assert re.search(r"include-system-site-packages\s*=\s*true", cfg), cfg  # JetPack's TensorRT
    assert root.path(PREFIX / "venv/bin/phytoscope").is_file()
    assert os.access(root.path(LAUNCHER), os.X_OK)
    assert status(root, "phytoscope") == "installed"
    listed = in_root(root, ["dpkg", "-L", "phytoscope"]).stdout
    assert "venv" not in listed, "the venv must not be dpkg-owned"


def test_installed_info(installed_deb):
    info = json.loads(phytoscope(installed_deb, "info", "--json").stdout)
    version = re.search(r'^version = "(.+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert info["phytoscope"] == version
    system_python = in_root(
        installed_deb["root"],
        ["/usr/bin/python3", "-c", "import platform; print(platform.python_version())"],
    ).stdout
    assert info["python"] == system_python.strip()
    assert info["backends"]["onnxruntime"] == "available"
    assert info["paths"]["models"] == "/opt/phytoscope/models"
    assert info["paths"]["resources"] == "/opt/phytoscope/resources"
    assert info["paths"]["data"] == str(
        Path(installed_deb["env"]["HOME"]) / ".local/share/phytoscope"
    )
    for package in (
        "numpy",
        "onnxruntime",
        "opencv-python-headless",
        "PySide6-Essentials",
        "pyqtgraph",
    ):
        assert info["packages"][package], f"{package} not installed in the venv"
    if has_model():
        assert isinstance(info["models"], list) and info["models"], info["models"]


def test_installed_qt_loads(installed_deb):
    """The Depends cover what Qt's platform plugins link against; Qt starts offscreen."""
    root = installed_deb["root"]
    code = "from PySide6.QtWidgets import QApplication; import pyqtgraph; app = QApplication([]); print('ok')"
    venv_python = str(PREFIX / "venv/bin/python")
    out = in_root(
        root, [*installed_deb["offline"], venv_python, "-c", code], env=installed_deb["env"]
    )
    assert out.stdout.strip() == "ok"
    plugins = list(
        root.path(PREFIX / "venv").glob(
            "lib/python3*/site-packages/PySide6/Qt/plugins/platforms/libq*.so"
        )
    )
    assert plugins
    for plugin in plugins:
        if plugin.name in ("libqxcb.so", "libqwayland.so", "libqoffscreen.so"):
            inside = "/" + str(plugin.relative_to(root.path("/")))
            unresolved = [
                line
                for line in in_root(root, ["ldd", inside]).stdout.splitlines()
                if "not found" in line
            ]
            assert not unresolved, f"{plugin.name}: {unresolved} (add the package to Depends)"


def test_installed_classify_offline(installed_deb):
    if not has_model():
        pytest.skip("models/ holds no .onnx model yet: nothing to classify with")
    proc = phytoscope(
        installed_deb,
        "classify",
        "--format",
        "json",
        "--db",
        "--",
        str(sample_images()),
        check=False,
    )
    assert proc.returncode in (0, 3), proc.stderr  # 3: some inputs skipped, the rest classified
    doc = json.loads(proc.stdout)
    images = [
        p
        for p in installed_deb["root"].path(sample_images()).rglob("*")
        if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff")
    ]
    assert len(doc["predictions"]) >= len(images) - len(doc["skipped"]) > 0
    assert all(p["genus"] for p in doc["predictions"])
    assert (installed_deb["home"] / ".local/share/phytoscope/results.sqlite").is_file()
    table = phytoscope(
        installed_deb, "classify", str(PREFIX / "resources/samples/ifcb"), check=False
    )
    assert table.returncode in (0, 3), table.stderr


def test_reinstall_rebuilds_the_venv(installed_deb, host_deb):
    root = installed_deb["root"]
    marker = root.path(PREFIX / "venv/stale-file")
    marker.write_text("from the previous venv")
    in_root(root, [*installed_deb["offline"], "dpkg", "-i", str(host_deb)])
    assert not marker.exists(), "the prerm/postinst must replace the venv on upgrade or reinstall"
    assert phytoscope(installed_deb, "--version").stdout.strip().startswith("phytoscope ")


def test_remove_and_purge_leave_only_user_data(installed_deb):
    root = installed_deb["root"]
    in_root(root, ["dpkg", "--remove", "phytoscope"])
    assert not root.path(PREFIX).exists(), sorted(map(str, root.path(PREFIX).rglob("*")))[:20]
    assert not root.path(LAUNCHER).exists()
    in_root(root, ["dpkg", "--purge", "phytoscope"])
    assert status(root, "phytoscope") in ("", "not-installed")
    left = phytoscope_paths(root) - installed_deb["before"]
    assert not left, f"left behind after purge: {sorted(left)}"
    user_data = installed_deb["home"] / ".local/share/phytoscope"
    assert (user_data / "keep.txt").read_text().startswith("user data")
    if has_model():
        assert (user_data / "results.sqlite").is_file(), (
            "purge must never delete the results database"
        )


# -- Python 3.10 (JetPack 6's Python) ---------------------------------------------------------


def find_python310() -> str | None:
    """A working Python 3.10 (pyenv shims on PATH may name one that is not selected)."""
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates = [shutil.which("python3.10"), *map(str, sorted(pyenv.glob("3.10*/bin/python3.10")))]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 10))"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    return None


def test_python310_runs_the_packaged_wheels(host_tree, tmp_path):
    """JetPack 6 has Python 3.10: syntax of every module, then the cp310 wheel set really runs."""
    python310 = find_python310()
    if python310 is None:
        pytest.skip(
            "no Python 3.10 interpreter here (python3.10 on PATH or ~/.pyenv/versions/3.10*)"
        )
    sources = [str(p) for p in (REPO / "phytoscope").rglob("*.py")]
    code = "import sys\nfor f in sys.argv[1:]:\n    compile(open(f, encoding='utf-8').read(), f, 'exec')\n"
    run([python310, "-c", code, *sources])
    pool = host_tree / "opt/phytoscope/wheels"
    lock = pool / "requirements-cp310.txt"
    if not lock.is_file():
        pytest.skip("this package has no cp310 wheels")
    venv = tmp_path / "venv310"
    run([python310, "-m", "venv", str(venv)])
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "QT_QPA_PLATFORM": "offscreen",
        "PHYTOSCOPE_MODELS": str(host_tree / "opt/phytoscope/models"),
        "PHYTOSCOPE_RESOURCES": str(host_tree / "opt/phytoscope/resources"),
    }
    (app,) = pool.glob("phytoscope-*.whl")
    run(
        [
            str(venv / "bin/python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--find-links",
            str(pool),
            "-r",
            str(lock),
            f"{app}[gui]",
        ],
        env=env,
    )
    info = json.loads(run([str(venv / "bin/phytoscope"), "info", "--json"], env=env).stdout)
    assert info["python"].startswith("3.10.") and info["backends"]["onnxruntime"] == "available"
    if has_model():
        samples = host_tree / "opt/phytoscope/resources/samples/images"
        proc = run(
            [str(venv / "bin/phytoscope"), "classify", "--format", "json", str(samples)],
            env=env,
            check=False,
        )
        assert proc.returncode in (0, 3), proc.stderr
        assert json.loads(proc.stdout)["predictions"]


# -- arm64 (Jetson, JetPack 6), cross-built -------------------------------------------------


def test_arm64_package_for_jetpack6(tmp_path):
    deb = build_deb("arm64", tmp_path)
    lintian(deb)
    assert field(deb, "Architecture") == "arm64"
    depends = field(deb, "Depends")
    assert (
        "python3 (>= 3.10)" in depends
        and "python3 (<< 3.11)" in depends
        and "python3-venv" in depends
    )
    glibc = re.search(r"libc6 \(>= 2\.(\d+)\)", depends)
    assert glibc and int(glibc.group(1)) <= 35, "JetPack 6 has glibc 2.35"
    assert "python3-libnvinfer" in field(deb, "Recommends")
    files = contents(deb)
    check_wheel_pool(files, "arm64", ["cp310"])
    for required in (
        "usr/bin/phytoscope",
        "usr/share/applications/phytoscope.desktop",
        "opt/phytoscope/wheels/requirements-cp310.txt",
    ):
        assert required in files
    tree = tmp_path / "tree"
    run(["dpkg-deb", "-x", str(deb), str(tree)])
    pins = dict(
        line.split("==")
        for line in (tree / "opt/phytoscope/wheels/requirements-cp310.txt").read_text().split()
    )
    for package in (
        "numpy",
        "onnxruntime",
        "opencv-python-headless",
        "pyside6-essentials",
        "pyqtgraph",
        "psutil",
        "tifffile",
    ):
        assert package in pins, f"{package} not vendored for arm64"
    assert int(pins["numpy"].split(".")[0]) < 2, (
        "JetPack 6 constraint: NumPy 1.x beside NVIDIA's modules"
    )


# -- last: the test command left the machine as it found it ---------------------------------


def test_host_system_unchanged(host_before):
    """Issue #19.11: ``make test`` as root installed lintian, ~150 perl packages and the
    .deb itself on the machine. Runs last in this module, after every install test."""
    packages, paths = host_before
    assert host_packages() == packages, "the host's package set changed during the .deb tests"
    for path, existed in paths.items():
        assert path.exists() == existed, (
            f"{path} {'vanished' if existed else 'appeared'} on the host"
        )
