"""Atomic output files: complete or untouched, whatever happens to the writer (exception, ^C, SIGKILL)."""

from __future__ import annotations

import fcntl
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from unitrace.errors import UnitraceError
from unitrace.sinks.output import AtomicFile, atomic_output, reap_stale_temporaries, temporary_name


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


def test_success_replaces_the_target(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    with atomic_output(str(target)) as f:
        f.write("new ")
        assert target.read_text() == "old\n"  # nothing visible until the end
        assert Path(temporary_name(str(target))).exists()
        f.write("text\n")
    assert target.read_text() == "new text\n" and leftovers(tmp_path) == []


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_leaves_the_target_untouched(tmp_path: Path, exc: BaseException) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    with pytest.raises(type(exc)), atomic_output(str(target)) as f:
        f.write("half")
        raise exc
    assert target.read_text() == "old\n" and leftovers(tmp_path) == []
    fresh = tmp_path / "fresh.txt"
    with pytest.raises(KeyboardInterrupt), atomic_output(str(fresh)) as f:
        f.write("x")
        raise KeyboardInterrupt
    assert not fresh.exists()


WRITER = textwrap.dedent("""
    import sys
    from unitrace.sinks.output import atomic_output
    with atomic_output(sys.argv[1]) as f:
        f.write("partial line\\n" * 1000)
        f.flush()
        print("written", flush=True)
        sys.stdin.read()  # until killed
        f.write("the end\\n")
""")


def test_sigkill_mid_write_leaves_no_half_file_and_the_next_run_reaps(tmp_path: Path) -> None:
    target = tmp_path / "trace.txt"
    target.write_text("previous run\n")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "written\n"
        tmp = Path(temporary_name(str(target), writer.pid))
        assert tmp.stat().st_size == len("partial line\n") * 1000  # it really was writing
        assert reap_stale_temporaries(str(tmp_path)) == []  # a live writer's file is not touched
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(timeout=30) == -signal.SIGKILL
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert target.read_text() == "previous run\n"
    assert leftovers(tmp_path) == [tmp.name]  # named .trace.txt.unitrace-PID.tmp
    assert tmp.name == f".trace.txt.unitrace-{writer.pid}.tmp"
    with atomic_output(str(target)) as f:  # the next writer into the directory removes it
        f.write("next run\n")
    assert leftovers(tmp_path) == [] and target.read_text() == "next run\n"


def test_mode_follows_the_umask_or_the_replaced_file(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        with atomic_output(str(tmp_path / "new")) as f:
            f.write("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o640
    kept = tmp_path / "kept"
    kept.write_text("x")
    kept.chmod(0o600)
    with atomic_output(str(kept)) as f:
        f.write("y")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and kept.read_text() == "y"


def test_descriptor_is_close_on_exec(tmp_path: Path) -> None:
    with atomic_output(str(tmp_path / "f")) as f:
        assert fcntl.fcntl(f.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC


def test_devices_and_fifos_are_written_directly(tmp_path: Path) -> None:
    with atomic_output("/dev/null") as f:
        f.write("discarded\n")
    assert Path("/dev/null").is_char_device()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE, text=True)
    with atomic_output(str(fifo)) as f:
        f.write("through the pipe\n")
    assert reader.communicate(timeout=30)[0] == "through the pipe\n"
    assert leftovers(tmp_path) == []


def test_symlink_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    with atomic_output(str(link)) as f:
        f.write("new")
    assert link.is_symlink() and real.read_text() == "new"


def test_dash_is_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    with atomic_output("-") as f:
        f.write("to stdout\n")
    assert capsys.readouterr().out == "to stdout\n"


def test_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(UnitraceError, match=r"cannot write .*/nodir/x: No such file or directory"):
        AtomicFile(str(tmp_path / "nodir" / "x"))
    with pytest.raises(UnitraceError, match="is a directory"):
        AtomicFile(str(tmp_path))


def test_atomic_file_commit_and_abort(tmp_path: Path) -> None:
    a, b = AtomicFile(str(tmp_path / "a"), binary=True), AtomicFile(str(tmp_path / "b"))
    a.file.write(b"\x00bytes")
    b.file.write("text")
    a.commit()
    b.abort()
    a.commit()  # idempotent
    assert (tmp_path / "a").read_bytes() == b"\x00bytes" and not (tmp_path / "b").exists()
    assert leftovers(tmp_path) == []
