"""Collect the licence texts of everything the installers bundle into resources/licenses/ (shown by Help → About).

    .venv/bin/python installer/collect_licenses.py

Run it after changing requirements.lock and commit the result. Components are the runtime dependencies of the
csos-desk distribution (followed recursively from its metadata, extras and test tools left out, and minus what the
PyInstaller spec excludes), plus the Python runtime and PyInstaller's bootloader, which are inside every bundle.
Licence files come from each package's own .dist-info; where a package ships none (PySide6, shiboken6) the text of
the licence its metadata names is taken from Debian's /usr/share/common-licenses.
`--check` only reports whether the committed folder is current (exit 1 if not).
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import re
import shutil
import sys
import sysconfig
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "resources" / "licenses"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bundle_policy import EXCLUDED_DISTRIBUTIONS  # noqa: E402

LICENCE_FILE = re.compile(r"^(LICEN[CS]E|COPYING|NOTICE|AUTHORS)", re.IGNORECASE)
COMMON_LICENCES = Path("/usr/share/common-licenses")
# SPDX id → Debian common-licenses files holding its text (LGPL-3 builds on GPL-3, so both go along).
SPDX_TEXTS = {"LGPL-3.0-only": ("LGPL-3", "GPL-3"), "GPL-2.0-only": ("GPL-2",), "GPL-3.0": ("GPL-3",),
              "GPL-3.0-only": ("GPL-3",)}


def normalise(name: str) -> str:
    return re.sub(r"[-_.\s]+", "-", name).lower()


def runtime_distributions(root: str = "csos-desk") -> list[metadata.Distribution]:
    found: dict[str, metadata.Distribution] = {}
    pending = [root]
    while pending:
        name = pending.pop()
        key = normalise(name)
        if key in found or key in EXCLUDED_DISTRIBUTIONS:
            continue
        dist = metadata.distribution(name)
        found[key] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    found.pop(normalise(root))
    return sorted(found.values(), key=lambda d: normalise(d.metadata["Name"]))


def licence_name(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    expression = meta.get("License-Expression")
    if expression:
        return expression
    classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    if classifiers:
        return ", ".join(classifiers)
    text = (meta.get("License") or "").strip()
    return text.splitlines()[0][:80] if text else "see licence text"


def licence_files(dist: metadata.Distribution) -> list[tuple[str, bytes]]:
    files = []
    for entry in dist.files or []:
        if ".dist-info" in str(entry) and LICENCE_FILE.match(entry.name):
            relative = Path(*[part for part in Path(str(entry)).parts if not part.endswith(".dist-info")])
            if relative.parts and relative.parts[0] == "licenses":
                relative = Path(*relative.parts[1:])
            files.append((str(relative), Path(dist.locate_file(entry)).read_bytes()))
    if not files:
        for spdx in re.split(r"\s+OR\s+|\s+AND\s+", licence_name(dist)):
            for name in SPDX_TEXTS.get(spdx.strip(), ()):
                if (COMMON_LICENCES / name).is_file():
                    files.append((name, (COMMON_LICENCES / name).read_bytes()))
    return files


def components() -> list[dict]:
    """(entry for index.json, {relative file name: bytes}) for every bundled component."""
    result = []
    for dist in runtime_distributions():
        result.append((dist.metadata["Name"], dist.version, licence_name(dist), licence_files(dist)))
    python_licence = Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"
    result.append(("Python", ".".join(map(str, sys.version_info[:3])), "PSF-2.0",
                   [("LICENSE.txt", python_licence.read_bytes())] if python_licence.is_file() else []))
    pyinstaller = metadata.distribution("pyinstaller")
    result.append(("PyInstaller bootloader", pyinstaller.version, "GPL-2.0-or-later WITH Bootloader-exception",
                   licence_files(pyinstaller)))
    return result


def build_tree(target: Path) -> None:
    program = metadata.distribution("csos-desk")
    index = {"program": {"name": "CSOS Desk", "version": program.version,
                         "license": program.metadata.get("License") or "Proprietary"},
             "components": []}
    for name, version, licence, files in components():
        folder = f"{normalise(name)}-{version}"
        entry = {"name": name, "version": version, "license": licence, "files": []}
        for relative, data in files:
            path = target / folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            entry["files"].append(f"{folder}/{relative}")
        index["components"].append(entry)
    (target / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether resources/licenses is current")
    args = parser.parse_args(argv)
    staging = OUT.with_name(".licenses-staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        build_tree(staging)
        if args.check:
            current = OUT.is_dir() and _snapshot(OUT) == _snapshot(staging)
            print("resources/licenses is current" if current else
                  "resources/licenses is out of date: run installer/collect_licenses.py")
            return 0 if current else 1
        shutil.rmtree(OUT, ignore_errors=True)
        staging.rename(OUT)
        print(f"wrote {OUT} ({len(json.loads((OUT / 'index.json').read_text())['components'])} components)")
        return 0
    finally:
        shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
