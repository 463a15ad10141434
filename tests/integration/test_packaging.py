"""Packaging findings of issue 19, fast (no PyInstaller build): the menu entry is valid for Debian 12's
desktop-file-validate, the .deb does not ship /opt, and the Windows self-test shortcut waits for a key."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DESKTOP = ROOT / "installer" / "linux" / "csos-desk.desktop"


def _build_deb_module():
    loader = importlib.machinery.SourceFileLoader("build_deb", str(ROOT / "installer" / "linux" / "build-deb"))
    spec = importlib.util.spec_from_loader("build_deb", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_desktop_entry_declares_a_version_debian_12_knows():
    version = re.search(r"^Version=(.*)$", DESKTOP.read_text(), re.M)
    assert version is None or version.group(1) in {"1.0", "1.1", "1.2", "1.3", "1.4"}  # 0.26 knows up to 1.4


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None,
                    reason="desktop-file-validate not installed (apt package desktop-file-utils)")
def test_desktop_entry_passes_desktop_file_validate():
    done = subprocess.run(["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not installed")
def test_the_deb_does_not_ship_opt(tmp_path):
    """Built from a stand-in bundle with the real staging code: every path is under /usr (no /opt to own)."""
    build_deb = _build_deb_module()
    bundle = tmp_path / "bundle"
    (bundle / "_internal").mkdir(parents=True)
    for name in ("csos-desk", "csos-desk-console"):
        (bundle / name).write_text("#!/bin/sh\n")
        (bundle / name).chmod(0o755)
    root = tmp_path / "deb-root"
    build_deb.stage(bundle, root, "0.0.1", ["libc6"])
    deb = tmp_path / "csos-desk.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Znone", "--build", str(root), str(deb)], check=True,
                   stdout=subprocess.DEVNULL)
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True, capture_output=True, text=True).stdout
    paths = [line.split()[5] for line in listing.splitlines()]
    assert not [p for p in paths if p.startswith("./opt")], paths
    assert "./usr/lib/csos-desk/csos-desk" in paths and "./usr/share/applications/csos-desk.desktop" in paths
    link = next(line for line in listing.splitlines() if " ./usr/bin/csos-desk -> " in line)
    assert link.endswith("-> /usr/lib/csos-desk/csos-desk")


def test_windows_self_test_shortcut_waits_for_a_key():
    iss = (ROOT / "installer" / "windows" / "csos-desk.iss").read_text()
    shortcut = next(line for line in iss.splitlines() if line.startswith('Name: "{autoprograms}\\{#AppName} self-test"'))
    assert 'Filename: "{cmd}"' in shortcut
    parameters = re.search(r'Parameters: "((?:[^"]|"")*)"', shortcut).group(1).replace('""', '"')
    # cmd /c strips the outer quotes: runs the console program with --self-test, then waits for a key.
    assert parameters == '/c ""{app}\\{#AppConsoleExe}" --self-test & pause"'
