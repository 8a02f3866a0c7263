"""Run a command inside a real Debian kernel under QEMU, for the kernel features this host lacks.

The host kernel has no kprobes and refuses the function tracer, so those tests run in Debian's own 6.1
kernel booted under software emulation (TCG). The guest sees the host's `/` read-only over virtio-9p, with
tmpfs overlays on the few directories that must be writable (/tmp, /root, the project checkout), and a
second, writable 9p share through which the command's exit code and output come back. Each run is a fresh
VM, so retrying a run that hung is safe.

Usage: python3 tests/guest/guest.py [--timeout S] [--cpus N] -- COMMAND...   (run as root, from anywhere)
The command runs with the project checkout as its working directory. Exit status: the command's, or 124 if
the guest timed out on every attempt, or 125 if the guest could not be prepared.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("UNITRACE_GUEST_CACHE", "/var/cache/unitrace-guest"))
# Modules the initramfs loads, in dependency order (`modprobe -S KVER --show-depends MOD`).
MODULES = ("9p", "9pnet_virtio", "virtio_pci", "overlay")

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod "$m" 2>/dev/null; done
mkdir -p /newroot /share
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose hostroot /newroot || { echo "guest: no host root"; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,cache=none share /share || { echo "guest: no share"; poweroff -f; }
# Writable layers over the read-only host root.
mkdir -p /ovl
mount -t tmpfs tmpfs /ovl
for d in $(cat /share/writable); do
  key=$(echo "$d" | tr / _)
  mkdir -p /ovl/$key/upper /ovl/$key/work
  mount -t overlay overlay -o lowerdir=/newroot$d,upperdir=/ovl/$key/upper,workdir=/ovl/$key/work /newroot$d
done
mount -t proc proc /newroot/proc
mount -t sysfs sys /newroot/sys
mount -t devtmpfs dev /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/dev/shm
mount -t tracefs nodev /newroot/sys/kernel/tracing
mount -t debugfs nodev /newroot/sys/kernel/debug
mount -t bpf bpf /newroot/sys/fs/bpf 2>/dev/null
mount -t tmpfs tmpfs /newroot/run
mkdir -p /newroot/tmp/unitrace-guest-share
mount --bind /share /newroot/tmp/unitrace-guest-share
echo "guest: running command"
chroot /newroot /bin/sh -c 'cd "$(cat /tmp/unitrace-guest-share/cwd)" && UNITRACE_IN_GUEST=1 \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
  sh /tmp/unitrace-guest-share/cmd.sh >/tmp/unitrace-guest-share/stdout 2>/tmp/unitrace-guest-share/stderr; \
  echo $? >/tmp/unitrace-guest-share/rc'
sync
echo "guest: done rc=$(cat /share/rc)"
poweroff -f
"""


def guest_kernel() -> str:
    """The newest Debian kernel image installed in /boot, e.g. 6.1.0-56-amd64."""
    images = sorted(glob.glob("/boot/vmlinuz-*-amd64"))
    if not images:
        raise SystemExit("guest: no Debian kernel in /boot (apt-get install linux-image-amd64)")
    return images[-1].removeprefix("/boot/vmlinuz-")


def module_files(kver: str) -> list[Path]:
    order: list[Path] = []
    for mod in MODULES:
        out = subprocess.run(["modprobe", "-S", kver, "--show-depends", mod], capture_output=True, text=True,
                             check=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if parts and parts[0] == "insmod":
                p = Path(parts[1])
                if p not in order:
                    order.append(p)
    return order


def build_initramfs(kver: str) -> Path:
    """A busybox initramfs with the guest's 9p/overlay modules; cached by kernel version."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"initramfs-{kver}.cpio.gz"
    stamp = Path(__file__).stat().st_mtime
    if out.exists() and out.stat().st_mtime >= stamp:
        return out
    with tempfile.TemporaryDirectory(prefix="unitrace-initramfs-") as tmp:
        root = Path(tmp)
        for d in ("bin", "proc", "sys", "dev", "lib/modules", "newroot", "share"):
            (root / d).mkdir(parents=True, exist_ok=True)
        shutil.copy2("/bin/busybox", root / "bin/busybox")
        names = []
        for src in module_files(kver):
            data = src.read_bytes()
            if src.suffix == ".xz":
                import lzma

                data = lzma.decompress(data)
            elif src.suffix == ".zst":
                data = subprocess.run(["zstd", "-dc", str(src)], capture_output=True, check=True).stdout
            name = src.name.split(".ko")[0] + ".ko"
            (root / "lib/modules" / name).write_bytes(data)
            names.append(f"/lib/modules/{name}")
        (root / "modules.order").write_text("\n".join(names) + "\n")
        init = root / "init"
        init.write_text(INIT)
        init.chmod(0o755)
        files = subprocess.run(["find", "."], cwd=root, capture_output=True, check=True).stdout
        cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=files,
                              capture_output=True, check=True).stdout
        tmp_out = out.with_suffix(".tmp")
        tmp_out.write_bytes(gzip.compress(cpio, 6))
        tmp_out.replace(out)
    return out


def run_once(kver: str, initramfs: Path, command: list[str], cwd: Path, timeout: float, cpus: int,
             memory: str, writable: list[str]) -> tuple[int | None, str, str, str]:
    with tempfile.TemporaryDirectory(prefix="unitrace-guest-") as share:
        sh = Path(share)
        (sh / "cmd.sh").write_text(shlex.join(command) + "\n")
        (sh / "cwd").write_text(str(cwd))
        (sh / "writable").write_text("\n".join(writable) + "\n")
        console = sh / "console.log"
        argv = [
            "qemu-system-x86_64", "-M", "pc", "-accel", "tcg,thread=multi", "-cpu", "max",
            "-smp", str(cpus), "-m", memory, "-nographic", "-no-reboot",
            "-kernel", f"/boot/vmlinuz-{kver}", "-initrd", str(initramfs),
            "-append", "console=ttyS0 rdinit=/init panic=-1 quiet loglevel=4",
            "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
            "-fsdev", f"local,id=share,path={share},security_model=none",
            "-device", "virtio-9p-pci,fsdev=share,mount_tag=share",
            "-serial", f"file:{console}", "-monitor", "none", "-display", "none",
        ]
        with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) as vm:
            try:
                _, err = vm.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                vm.kill()
                vm.communicate()
                return None, "", "", console.read_text(errors="replace") if console.exists() else ""
        rc_file = sh / "rc"
        stdout = (sh / "stdout").read_text(errors="replace") if (sh / "stdout").exists() else ""
        stderr = (sh / "stderr").read_text(errors="replace") if (sh / "stderr").exists() else ""
        log = console.read_text(errors="replace") if console.exists() else err.decode(errors="replace")
        if not rc_file.exists():
            return None, stdout, stderr, log
        return int(rc_file.read_text().strip() or 125), stdout, stderr, log


def run(command: list[str], *, timeout: float = 600, cpus: int = 1, memory: str = "1G", attempts: int = 3,
        cwd: Path = PROJECT) -> tuple[int, str, str]:
    """Run `command` in a fresh guest; returns (exit code, stdout, stderr). Retries a guest that hung."""
    kver = guest_kernel()
    initramfs = build_initramfs(kver)
    writable = ["/tmp", "/root", "/var/tmp", str(cwd)]
    log = ""
    for attempt in range(1, attempts + 1):
        start = time.monotonic()
        rc, out, err, log = run_once(kver, initramfs, command, cwd, timeout, cpus, memory, writable)
        took = time.monotonic() - start
        if rc is not None:
            sys.stderr.write(f"guest: kernel {kver}, attempt {attempt}, {took:.1f}s, exit {rc}\n")
            return rc, out, err
        sys.stderr.write(f"guest: attempt {attempt} did not finish ({took:.1f}s); console tail:\n"
                         + "\n".join(log.splitlines()[-15:]) + "\n")
    return 124, "", log


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--cpus", type=int, default=1)
    ap.add_argument("--memory", default="1G")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("no command")
    rc, out, err = run(cmd, timeout=args.timeout, cpus=args.cpus, memory=args.memory)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return rc


if __name__ == "__main__":
    sys.exit(main())
