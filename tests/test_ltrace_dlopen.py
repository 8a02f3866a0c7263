"""Libraries loaded with dlopen get their breakpoints (the loader's r_debug rendezvous), dlclosed ones lose
them; IFUNCs of a dlopened library (libm's cos) are found through their resolver's return."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROGS = Path(__file__).parent / "progs" / "ltrace"


@pytest.fixture(scope="module")
def dlo(build_c, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the program, the plugin): the plugin under a library's name, libplugin.so."""
    built = build_c(PROGS / "plugin.c", "plugin", ("-O1", "-shared", "-fPIC"))
    plugin = tmp_path_factory.mktemp("plugin") / "libplugin.so"
    shutil.copy(built, plugin)
    return build_c(PROGS / "dlopen.c", "dlopen", ("-O1",)), plugin


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "unitrace", *argv], capture_output=True, text=True, timeout=60,
                          check=False)


def test_dlopened_plugin_and_libm_through_dlsym(dlo: tuple[Path, Path]) -> None:
    exe, plugin = dlo
    proc = _run("ltrace", "-e", "plugin_fn@*", "-e", "cbrt+cos@libm*", str(exe), str(plugin), "3")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("round") == 3
    lines = proc.stderr.splitlines()
    fn = [line for line in lines if line.startswith("plugin_fn(")]
    # one call a round, each after the plugin was dlclosed and loaded again: 3r+4 for r = 1, 2, 3
    assert [line.split("(")[1].split(",")[0] for line in fn] == ["1", "2", "3"], proc.stderr
    assert [line.rsplit("= ", 1)[1] for line in fn] == ["4", "7", "10"], proc.stderr
    # plugin_other's own call of plugin_fn is not the program's: not shown (as ltrace)
    assert not any(line.startswith("plugin_fn(5") for line in lines), proc.stderr
    assert sum(line.startswith("cbrt(") for line in lines) == 3, proc.stderr
    assert sum(line.startswith("cos(") for line in lines) == 3, proc.stderr  # an IFUNC in libm
    assert "+++ exited (status 0) +++" in lines


def test_x_on_the_plugins_own_functions(dlo: tuple[Path, Path]) -> None:
    exe, plugin = dlo
    proc = _run("ltrace", "-x", "plugin_*@libplugin*", str(exe), str(plugin), "2")
    assert proc.returncode == 0, proc.stderr
    names = [line.split("(")[0].split(" resumed")[0] for line in proc.stderr.splitlines()
             if line.startswith(("plugin_", "<..."))]
    # -x reports every caller: plugin_other's nested plugin_fn too
    assert names == ["plugin_other", "plugin_fn", "<... plugin_other", "plugin_fn"] * 2, proc.stderr
    assert "<... plugin_other resumed> )" in proc.stderr and "= 15" in proc.stderr and "= 18" in proc.stderr


def test_user_probes_on_a_dlopened_library(dlo: tuple[Path, Path]) -> None:
    exe, plugin = dlo
    proc = _run("trace", "--backend", "ptrace", f"user:{plugin}:plugin_fn", f"user:{plugin}:plugin_fn%return",
                "--", str(exe), str(plugin), "2")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    calls = [line for line in out.splitlines() if "plugin_fn(" in line and "from" in line]
    returns = [line for line in out.splitlines() if "plugin_fn() = " in line]
    assert len(calls) == 4 and len(returns) == 4, out  # plugin_other's call and main's, in each round
    assert [r.split("= ")[1].split()[0] for r in returns] == ["16", "4", "19", "7"], out


def test_no_notice_for_a_library_not_loaded_yet(dlo: tuple[Path, Path]) -> None:
    exe, plugin = dlo
    proc = _run("ltrace", "-e", "plugin_fn@libplugin*", str(exe), str(plugin), "1")
    assert "no function" not in proc.stderr, proc.stderr
    assert "plugin_fn(1" in proc.stderr
