#!/usr/bin/env bash
# One-command setup of unitrace on a Debian 12 machine, as root: system packages, kernel headers for bcc,
# tracefs, a .venv with unitrace installed editable (plus test extras) and Debian's bcc importable from it,
# and the bundled demo built. Idempotent and quick when everything is already in place; silent on
# success; on failure it names the step and shows the end of that step's log.
#
#   scripts/setup.sh            set up (or check) everything
#   scripts/setup.sh --no-guest skip the packages of the QEMU guest stage (qemu, a Debian kernel, busybox),
#                               whose tests then skip with the reason; --guest, or UNITRACE_SETUP_GUEST=0/1,
#                               decide it either way
#   UNITRACE_SETUP_VERBOSE=1    say what each step does
#
# The venv is built from Debian's /usr/bin/python3, not whatever `python3` is first on PATH: Debian's
# python3-bpfcc (bcc is not on PyPI) is packaged for that interpreter, it is installed by apt on every
# Debian 12 machine (a pyenv or other interpreter may not be), and the .venv then does not depend on a
# user's shell setup. UNITRACE_PYTHON=/path/to/python3.11 overrides the choice.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
PYTHON="${UNITRACE_PYTHON:-/usr/bin/python3}"
LOG="$(mktemp -t unitrace-setup.XXXXXX)"
trap 'rm -f "$LOG"' EXIT
VERBOSE="${UNITRACE_SETUP_VERBOSE:-0}"
# The QEMU guest stage's packages: part of every setup (CI runs the guest stage: tests/test_guest_stage.py);
# --no-guest leaves them out on machines that only want the host backends.
GUEST_BY_DEFAULT=1
WANT_GUEST="${UNITRACE_SETUP_GUEST:-$GUEST_BY_DEFAULT}"
for arg in "$@"; do
    case "$arg" in
        --guest) WANT_GUEST=1 ;;
        --no-guest) WANT_GUEST=0 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

say() { if [ "$VERBOSE" = 1 ]; then echo "setup: $*"; fi; }

# run STEP CMD...: run quietly; on failure name the step, show the log's tail and stop.
run() {
    local step="$1"; shift
    say "$step"
    if ! "$@" >>"$LOG" 2>&1; then
        echo "setup.sh: FAILED: $step" >&2
        echo "setup.sh: command: $*" >&2
        tail -n 30 "$LOG" | sed 's/^/  | /' >&2
        exit 1
    fi
}

fail() { echo "setup.sh: FAILED: $*" >&2; exit 1; }

ARCH="$(dpkg --print-architecture 2>/dev/null || echo unknown)"
KREL="$(uname -r)"

# ------------------------------------------------------------------ system packages
BASE_PACKAGES=(python3 python3-venv gcc make libc6-dev strace ltrace bpftrace bpfcc-tools python3-bpfcc
               "linux-headers-$ARCH" trace-cmd bpftool gdb tmux)
# For the QEMU guest stage (a Debian 6.1 kernel with kprobes and the function tracer; docs/setup.md): the
# emulator, the guest kernel (its headers come with linux-headers-$ARCH above), static busybox for the
# initramfs, and what tests/guest/guest.py builds that initramfs with (modprobe, zstd, cpio).
GUEST_PACKAGES=(qemu-system-x86 "linux-image-$ARCH" busybox-static kmod zstd cpio)

missing_packages() {
    local pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            echo "$pkg"
        fi
    done
}

install_packages() {
    local missing
    mapfile -t missing < <(missing_packages "$@")
    [ "${#missing[@]}" -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || fail "packages missing (${missing[*]}) and not root: run as root, or apt-get install them"
    command -v apt-get >/dev/null || fail "packages missing (${missing[*]}) and no apt-get: this script is for Debian 12"
    export DEBIAN_FRONTEND=noninteractive
    run "apt-get update" apt-get -o DPkg::Lock::Timeout=300 update -q
    run "apt-get install ${missing[*]}" apt-get -o DPkg::Lock::Timeout=300 install -y -q \
        --no-install-recommends "${missing[@]}"
}

install_packages "${BASE_PACKAGES[@]}"
if [ "$WANT_GUEST" = 1 ]; then
    install_packages "${GUEST_PACKAGES[@]}"
fi

# ------------------------------------------------------------------ kernel headers for bcc
# bcc compiles C at run time against /lib/modules/$(uname -r)/build. A kernel that ships no headers (this
# VM's 6.18) gets Debian's newest installed linux-headers: build -> the arch package, source -> -common.
link_kernel_headers() {
    local mod="/lib/modules/$KREL"
    if [ -d "$mod/build/include" ] || [ -e /sys/kernel/kheaders.tar.xz ]; then
        return 0
    fi
    local build
    build="$(ls -d /usr/src/linux-headers-*-"$ARCH" 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$build" ] || fail "no kernel headers for $KREL and no /usr/src/linux-headers-*-$ARCH to link (apt-get install linux-headers-$ARCH)"
    local common="${build%-"$ARCH"}-common"
    [ -d "$common" ] || fail "$common is missing (it comes with $(basename "$build"))"
    [ "$(id -u)" -eq 0 ] || fail "kernel headers need linking into $mod: run as root"
    say "linking $mod/build -> $build"
    mkdir -p "$mod"
    ln -sfn "$build" "$mod/build"
    ln -sfn "$common" "$mod/source"
}
link_kernel_headers

# ------------------------------------------------------------------ tracefs
if ! grep -qs " tracefs " /proc/mounts; then
    if [ -d /sys/kernel/tracing ] && [ "$(id -u)" -eq 0 ]; then
        run "mount tracefs" mount -t tracefs nodev /sys/kernel/tracing
    else
        echo "setup.sh: warning: tracefs is not mounted (needs root: mount -t tracefs nodev /sys/kernel/tracing)" >&2
    fi
fi

# ------------------------------------------------------------------ the venv
[ -x "$PYTHON" ] || fail "$PYTHON not found (apt-get install python3, or set UNITRACE_PYTHON)"
if [ ! -x "$VENV/bin/python" ]; then
    run "create $VENV with $PYTHON" "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when the package metadata changed since the last install (a stamp of pyproject.toml's hash):
# the editable install already follows every source edit.
STAMP="$VENV/.unitrace-setup-stamp"
want_stamp="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1) $REPO"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want_stamp" ] || [ ! -x "$VENV/bin/unitrace" ]; then
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
    run "pip install -e .[test]" "$VENV/bin/python" -m pip install -q -e "$REPO[test]"
    echo "$want_stamp" >"$STAMP"
fi

# Debian's bcc (python3-bpfcc) in the venv, without the rest of dist-packages: a directory holding only a
# symlink to the bcc package, appended to sys.path by a .pth file (so the venv's own packages come first).
BCC_SRC=/usr/lib/python3/dist-packages/bcc
BCC_DIR="$VENV/debian-bcc"
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [ -d "$BCC_SRC" ]; then
    mkdir -p "$BCC_DIR"
    [ "$(readlink "$BCC_DIR/bcc" 2>/dev/null)" = "$BCC_SRC" ] || ln -sfn "$BCC_SRC" "$BCC_DIR/bcc"
    [ "$(cat "$SITE/unitrace-debian-bcc.pth" 2>/dev/null)" = "$BCC_DIR" ] || echo "$BCC_DIR" >"$SITE/unitrace-debian-bcc.pth"
    run "import bcc from the venv" "$VENV/bin/python" -c "import bcc"
fi

# ------------------------------------------------------------------ the demo
command -v make >/dev/null || fail "make is missing (apt-get install make)"
run "build the demo (make -C demo)" make -s -C "$REPO/demo"

say "done"
