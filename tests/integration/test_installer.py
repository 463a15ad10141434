"""Installers (issue 8/10): the self-test, its bundled sample, icons and licences, and — marked slow — the real
PyInstaller bundle and .deb, installed into a scratch root and self-tested from the installed files."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app import __version__
from app.services import self_test
from app.services.self_test import verify_sample

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "resources" / "samples"
EXPECTED_CHECKS = {"installation", "database", "sample order", "pkcs11", "qt", "icon", "main window", "about dialog"}
SOFTHSM_MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                   "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so")


def _load(path: Path, name: str):
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The user's environment minus anything pointing at this checkout or a token; data goes to tmp_path."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PKCS11_MODULE", "CSOS_DATABASE_URL", "CSOS_PROFILE"}}
    env.update(QT_QPA_PLATFORM="offscreen", CSOS_DATA_DIR=str(tmp_path / "user-data"), HOME=str(tmp_path / "home"))
    env.update(extra)
    return env


def _run_self_test(command: list[str], tmp_path: Path, **env: str) -> tuple[int, dict[str, tuple[bool, str]], str]:
    done = subprocess.run([*command, "self-test", "--json"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env=_clean_env(tmp_path, **env))
    report = json.loads(done.stdout)
    checks = {c["check"]: (c["ok"], c["detail"]) for c in report["checks"]}
    assert report["ok"] == all(ok for ok, _ in checks.values())
    return done.returncode, checks, done.stderr


# -- the self-test from the source tree -----------------------------------------------------------------------------


def test_self_test_flag_prints_one_ok_line_per_check_and_leaves_user_data_alone(tmp_path):
    done = subprocess.run([sys.executable, "-m", "app", "--self-test"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env=_clean_env(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith(("ok", "FAIL"))]
    assert {line.split(None, 1)[1].split(":")[0] for line in lines} == EXPECTED_CHECKS
    assert all(line.startswith("ok ") for line in lines), done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "user-data").exists(), "the self-test must not create the user's order book"


def test_self_test_command_uses_the_data_dir_it_is_given(tmp_path):
    data = tmp_path / "pharmacy"
    code, checks, _ = _run_self_test([sys.executable, "-m", "app", "--data-dir", str(data)], tmp_path)
    assert code == 0, checks
    assert (data / "training" / "orderbook.sqlite3").is_file()
    assert str(data / "training" / "orderbook.sqlite3") in checks["database"][1]


def test_a_token_driver_that_does_not_load_fails_the_self_test(tmp_path):
    not_a_driver = tmp_path / "driver.so"
    not_a_driver.write_text("not a shared library")
    code, checks, stderr = _run_self_test([sys.executable, "-m", "app"], tmp_path, PKCS11_MODULE=str(not_a_driver))
    assert code == 1
    assert checks["pkcs11"][0] is False and "could not be loaded" in checks["pkcs11"][1]
    assert all(ok for name, (ok, _) in checks.items() if name != "pkcs11")
    assert "Traceback" not in stderr


@pytest.mark.hsm
def test_a_configured_softhsm_driver_is_loaded_and_its_token_listed(tmp_path):
    module = next((m for m in SOFTHSM_MODULES if Path(m).is_file()), None)
    util = shutil.which("softhsm2-util")
    if module is None or util is None:
        pytest.fail("SoftHSM2 is not installed (scripts/setup-env installs softhsm2)")
    conf = tmp_path / "softhsm2.conf"
    (tmp_path / "tokens").mkdir()
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\n")
    subprocess.run([util, "--init-token", "--free", "--label", "self-test", "--so-pin", "0000", "--pin", "123456"],
                   check=True, capture_output=True, env=dict(os.environ, SOFTHSM2_CONF=str(conf)))
    code, checks, _ = _run_self_test([sys.executable, "-m", "app"], tmp_path, PKCS11_MODULE=module,
                                     SOFTHSM2_CONF=str(conf))
    assert code == 0, checks
    assert "'self-test'" in checks["pkcs11"][1] and module in checks["pkcs11"][1]


def test_settings_pkcs11_modules_are_read_like_the_rest_of_the_program():
    assert self_test.configured_pkcs11_modules({"pkcs11_modules": "/a.so"}, {"PKCS11_MODULE": "/b.so"}) == [
        "/a.so", "/b.so"]
    assert self_test.configured_pkcs11_modules({"pkcs11_modules": ["/a.so", "/a.so"]}, {}) == ["/a.so"]
    assert self_test.configured_pkcs11_modules({}, {}) == []


# -- the bundled sample -----------------------------------------------------------------------------------------------


def _sample_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "samples"
    shutil.copytree(SAMPLES, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return copy


def test_the_bundled_sample_verifies_and_openssl_agrees():
    assert verify_sample(SAMPLES).ok, verify_sample(SAMPLES).detail
    metadata = json.loads((SAMPLES / "sample.json").read_text())
    from datetime import datetime

    at = int(datetime.fromisoformat(metadata["verify_at"]).timestamp())
    done = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any",
                           "-in", str(SAMPLES / "sample-order.csos"), "-CAfile", str(SAMPLES / "training-trust.pem"),
                           "-attime", str(at), "-out", os.devnull], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_an_altered_sample_fails_with_the_verifiers_reason(tmp_path):
    copy = _sample_copy(tmp_path)
    document = bytearray((copy / "sample-order.csos").read_bytes())
    index = document.find(b"BEG*00*SA*")
    document[index + 10] ^= 0x01  # one bit of the order number inside the signed 850
    (copy / "sample-order.csos").write_bytes(bytes(document))
    result = verify_sample(copy)
    assert not result.ok and "content_altered" in result.detail and result.line.startswith("FAIL sample order:")


def test_the_sample_is_checked_with_its_own_crls_and_never_the_network(tmp_path):
    copy = _sample_copy(tmp_path)
    metadata = json.loads((copy / "sample.json").read_text())
    metadata["crl_files"] = ["root.crl"]  # the sub CA's CRL left out: revocation of the signer is unknown
    (copy / "sample.json").write_text(json.dumps(metadata))
    result = verify_sample(copy)
    assert not result.ok and "revocation_unknown" in result.detail


def test_the_sample_is_verified_at_its_recorded_moment_not_today(tmp_path):
    copy = _sample_copy(tmp_path)
    metadata = json.loads((copy / "sample.json").read_text())
    metadata["verify_at"] = "2026-03-01T00:00:00+00:00"  # > 60 days after signing, CRLs long out of date
    (copy / "sample.json").write_text(json.dumps(metadata))
    result = verify_sample(copy)
    assert not result.ok and "order_expired" in result.detail


def test_a_missing_sample_is_a_plain_failure_not_a_traceback(tmp_path):
    result = verify_sample(tmp_path / "nowhere")
    assert not result.ok and "missing or damaged" in result.detail


def test_make_sample_regenerates_a_sample_that_verifies(tmp_path):
    make_sample = _load(SAMPLES / "make_sample.py", "make_sample_under_test")
    written = make_sample.write(tmp_path / "fresh")
    assert {p.name for p in written} == {"sample-order.csos", "training-trust.pem", "root.crl", "sub.crl",
                                         "sample.json"}
    assert verify_sample(tmp_path / "fresh").ok
    assert (tmp_path / "fresh" / "sample-order.csos").read_bytes() != (SAMPLES / "sample-order.csos").read_bytes()


# -- icons and licences ----------------------------------------------------------------------------------------------


def test_the_icon_exists_in_every_size_and_in_the_windows_ico():
    render_icons = _load(ROOT / "installer" / "render_icons.py", "render_icons_under_test")
    for size in render_icons.PNG_SIZES:
        data = render_icons.png_path(size).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", data[16:24]) == (size, size)
    ico = render_icons.ICO.read_bytes()
    reserved, kind, count = struct.unpack("<HHH", ico[:6])
    assert (reserved, kind, count) == (0, 1, len(render_icons.ICO_SIZES))
    edges = [ico[6 + 16 * i] or 256 for i in range(count)]
    assert edges == list(render_icons.ICO_SIZES)


def test_the_ico_writer_points_at_each_png():
    render_icons = _load(ROOT / "installer" / "render_icons.py", "render_icons_under_test")
    images = {16: b"\x89PNG-sixteen", 256: b"\x89PNG-big"}
    ico = render_icons.ico_from_pngs(images)
    for i, (size, data) in enumerate(sorted(images.items())):
        width, _, _, _, _, _, length, offset = struct.unpack("<BBBBHHII", ico[6 + 16 * i:22 + 16 * i])
        assert (width or 256) == size and ico[offset:offset + length] == data


def test_licences_cover_every_bundled_runtime_dependency():
    collect = _load(ROOT / "installer" / "collect_licenses.py", "collect_licenses_under_test")
    index = json.loads((ROOT / "resources" / "licenses" / "index.json").read_text())
    listed = {collect.normalise(c["name"]) for c in index["components"]}
    wanted = {collect.normalise(d.metadata["Name"]) for d in collect.runtime_distributions()}
    assert wanted - listed == set(), "run installer/collect_licenses.py after changing dependencies"
    assert {"python", "pyinstaller-bootloader", "pyside6-essentials"} <= listed
    assert not listed & collect.EXCLUDED_DISTRIBUTIONS
    for component in index["components"]:
        sizes = [(ROOT / "resources" / "licenses" / name).stat().st_size for name in component["files"]]
        assert sum(sizes) > 500, f"{component['name']} has no real licence text"


@pytest.mark.ui
def test_about_dialog_shows_version_icon_and_each_licence(qtbot):
    from app.ui.about_dialog import AboutDialog

    dialog = AboutDialog(profile_text="training")
    qtbot.addWidget(dialog)
    index = json.loads((ROOT / "resources" / "licenses" / "index.json").read_text())
    assert __version__ in dialog.summary.text() and index["program"]["license"] in dialog.summary.text()
    assert not dialog.icon_label.pixmap().isNull()
    assert dialog.component_list.count() == len(index["components"])
    for row in range(dialog.component_list.count()):
        if dialog.component_list.item(row).text().startswith("cryptography "):
            dialog.component_list.setCurrentRow(row)
    assert "Apache License" in dialog.licence_text.toPlainText()


@pytest.mark.ui
def test_about_dialog_without_a_licence_index_says_so(qtbot, tmp_path):
    from app.ui.about_dialog import AboutDialog

    dialog = AboutDialog(licences_dir=tmp_path)
    qtbot.addWidget(dialog)
    assert dialog.component_list.count() == 0
    assert "missing" in dialog.licence_text.toPlainText()


# -- the real bundle and .deb (slow) ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built():
    """scripts/build-installers: builds from scratch on a clean clone, reuses the last build if nothing changed."""
    started = time.monotonic()
    done = subprocess.run([str(ROOT / "scripts" / "build-installers")], cwd=ROOT, capture_output=True, text=True,
                          timeout=1700)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((ROOT / "build" / "installers" / "summary.json").read_text())
    print(f"\ninstallers: {'reused' if summary['reused'] else 'built'} in {time.monotonic() - started:.0f} s "
          f"(PyInstaller {summary['pyinstaller_seconds']} s, .deb {summary['deb_seconds']} s); "
          f"bundle {summary['bundle_bytes'] / 1e6:.0f} MB, .deb {summary['deb_bytes'] / 1e6:.0f} MB")
    return summary


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory):
    root = tmp_path_factory.mktemp("scratch-root")
    subprocess.run(["dpkg", "-x", str(ROOT / built["deb"]), str(root)], check=True)
    return root


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_bundle_is_under_the_size_target(built):
    # 200 MB until the History window's charts (issue 21): pyqtgraph needs numpy, whose OpenBLAS and Fortran runtime
    # (numpy.libs, 26 MB) load with it; numpy + pyqtgraph add ~40 MB even with their unused parts excluded in the
    # spec (measured: 201 MB). The target moves by that measured cost and no more, so anything else that grows the
    # bundle still fails here.
    assert built["bundle_bytes"] <= 215_000_000


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_deb_control_declares_version_and_system_libraries(built):
    def field(name: str) -> str:
        return subprocess.run(["dpkg-deb", "-f", str(ROOT / built["deb"]), name], check=True, capture_output=True,
                              text=True).stdout.strip()

    assert field("Package") == "csos-desk" and field("Version") == __version__
    depends = {d.strip() for d in field("Depends").split(",")}
    assert {"libegl1", "libgl1", "libfontconfig1", "libxkbcommon0", "libdbus-1-3", "libglib2.0-0"} <= depends
    assert "softhsm2" in field("Suggests")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_deb_installs_the_bundle_launcher_menu_entry_and_icons(installed):
    bundle = installed / "usr" / "lib" / "csos-desk"
    for name in ("csos-desk", "csos-desk-console"):
        assert os.access(bundle / name, os.X_OK)
    assert os.readlink(installed / "usr" / "bin" / "csos-desk") == "/usr/lib/csos-desk/csos-desk"
    desktop = (installed / "usr/share/applications/csos-desk.desktop").read_text()
    assert "Exec=csos-desk" in desktop and "Icon=csos-desk" in desktop
    for size in (16, 22, 24, 32, 48, 64, 96, 128, 256, 512):
        assert (installed / f"usr/share/icons/hicolor/{size}x{size}/apps/csos-desk.png").is_file()
    assert (installed / "usr/share/icons/hicolor/scalable/apps/csos-desk.svg").is_file()
    internal = bundle / "_internal"
    assert (internal / "app/models/migrations/env.py").is_file()
    assert list((internal / "app/models/migrations/versions").glob("*.py"))
    assert (internal / "resources/samples/sample-order.csos").is_file()
    assert not (internal / "resources/samples/make_sample.py").exists()
    assert not list(internal.rglob("libQt6Qml.so*")) and not list(internal.rglob("libQt6Quick.so*"))


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_system_library_the_bundle_needs_is_declared(built, installed):
    build_deb = _load(ROOT / "installer" / "linux" / "build-deb", "build_deb_under_test")
    bundle = installed / "usr" / "lib" / "csos-desk"
    internal = bundle / "_internal"
    search = os.pathsep.join(str(p) for p in {f.parent for f in internal.rglob("*.so*")})
    missing = set()
    for path in (p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink() and build_deb.is_elf(p)):
        done = subprocess.run(["ldd", str(path)], capture_output=True, text=True,
                              env={"LD_LIBRARY_PATH": search, "PATH": os.environ["PATH"]})
        missing |= {line.split()[0] for line in done.stdout.splitlines() if "not found" in line}
    depends = {d.strip() for d in subprocess.run(["dpkg-deb", "-f", str(ROOT / built["deb"]), "Depends"],
                                                 capture_output=True, text=True, check=True).stdout.split(",")}
    # Whatever this machine lacks must be one the package knows and declares (the installer pulls it in).
    assert {build_deb.KNOWN_PACKAGES.get(soname) for soname in missing} <= depends


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_installed_program_passes_its_self_test(installed, tmp_path):
    started = time.monotonic()
    program = installed / "usr" / "lib" / "csos-desk" / "csos-desk"
    done = subprocess.run([str(program), "--self-test"], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=_clean_env(tmp_path))
    print(f"\ninstalled self-test: {time.monotonic() - started:.1f} s\n{done.stdout}")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith(("ok", "FAIL"))]
    assert {line.split(None, 1)[1].split(":")[0] for line in lines} == EXPECTED_CHECKS
    assert all(line.startswith("ok ") for line in lines), done.stdout
    assert "installed bundle" in done.stdout
    assert not (tmp_path / "user-data").exists()

    console = installed / "usr" / "lib" / "csos-desk" / "csos-desk-console"
    version = subprocess.run([str(console), "--version"], capture_output=True, text=True, timeout=60,
                             env=_clean_env(tmp_path))
    assert version.stdout.strip() == f"csos-desk {__version__}"
