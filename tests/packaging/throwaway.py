"""A throw-away copy of this machine's root file system, to install packages into.

Installing the .deb for real is the only honest test of its maintainer scripts, but a test
command must never change the machine it runs on. So the package is installed into an
overlay of ``/``: the host's root is the read-only lower layer, every write (dpkg's
database, /opt/phytoscope, /usr/bin/phytoscope, apt's downloads) lands in an upper
directory under the test's temporary folder, and the whole thing lives in a private mount
namespace that no other process sees. When the holder process ends, the namespace and its
mounts go; the upper directory is deleted. The same idea as a container's writable layer,
without needing a container runtime.

Needs root (to mount), ``unshare``, ``nsenter`` and ``chroot`` (util-linux, coreutils) and
a kernel that allows mount namespaces and overlayfs; :func:`unavailable` says why not.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

_SETUP = r"""
set -e
mount --make-rprivate /
mount --bind / "$LOWER"
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$UPPER,workdir=$WORK" "$MERGED"
for d in proc sys dev tmp; do
    if [ -d "/$d" ] && mountpoint -q "/$d"; then mount --rbind "/$d" "$MERGED/$d"; fi
done
# the host's /tmp (same file system as /) is seen through the overlay: writes stay there
echo ready
exec chroot "$MERGED" sleep infinity
"""


def unavailable() -> str | None:
    """Why a throw-away root cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "installing into a throw-away root needs root (mount namespaces, overlayfs)"
    for tool in ("unshare", "nsenter", "chroot", "mount", "mountpoint"):
        if shutil.which(tool) is None:
            return f"{tool} not found (util-linux / coreutils)"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"this kernel or container refuses a private mount namespace: {probe.stderr.strip()}"
    return None


class ThrowawayRoot:
    """The host's root as a copy-on-write overlay in a private mount namespace.

    ``run`` executes a command inside it (chrooted); ``path`` maps a path inside it to one
    the test process can read (through ``/proc/<holder>/root``). Use as a context manager.
    """

    def __init__(self, base: Path):
        self.base = Path(base)
        dirs = {name: self.base / name for name in ("lower", "upper", "work", "merged")}
        for folder in dirs.values():
            folder.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, **{k.upper(): str(v) for k, v in dirs.items()})
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", _SETUP],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline().strip()
        if line != "ready":
            err = self.holder.stderr.read() if self.holder.stderr else ""
            self.close()
            raise RuntimeError(f"throw-away root not set up: {line} {err}".strip())
        self.root = Path(f"/proc/{self.holder.pid}/root")

    def run(
        self, cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 900
    ) -> subprocess.CompletedProcess:
        """``cmd`` inside the throw-away root (its own mounts, its own /), as root."""
        inner = ["env", "-i", *[f"{k}={v}" for k, v in (env or _default_env()).items()], *cmd]
        return subprocess.run(
            ["nsenter", "--target", str(self.holder.pid), "--mount", "--root", "--wd", *inner],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def path(self, inside: Path | str) -> Path:
        """Where the test process reads a file that lies at ``inside`` within the root."""
        return self.root / str(inside).lstrip("/")

    def close(self) -> None:
        if self.holder.poll() is None:
            os.killpg(self.holder.pid, signal.SIGKILL)
            self.holder.wait(timeout=30)
        for stream in (self.holder.stdout, self.holder.stderr):
            if stream is not None:
                stream.close()
        # the mounts died with the namespace; the upper layer is ordinary files
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> ThrowawayRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _default_env() -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}


def host_packages() -> str:
    """The host's package set as dpkg sees it (name, version, state), for before/after."""
    if shutil.which("dpkg-query") is None:
        return ""
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${Version} ${db:Status-Abbrev}\n"],
        capture_output=True,
        text=True,
    )
    return proc.stdout
