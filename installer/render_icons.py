"""Render the application icon (resources/icons/csos-desk.svg) in every size the desktops ask for.

    .venv/bin/python installer/render_icons.py

Writes resources/icons/csos-desk-<N>.png (N = 16 … 512, the freedesktop hicolor sizes; the .deb installs them) and
installer/windows/csos-desk.ico (16 … 256, for the .exe files and the Windows installer). Commit the results; the
build does not need Qt's SVG renderer on the build machine's display.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SVG = ROOT / "resources" / "icons" / "csos-desk.svg"
PNG_SIZES = (16, 22, 24, 32, 48, 64, 96, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
ICO = ROOT / "installer" / "windows" / "csos-desk.ico"


def png_path(size: int) -> Path:
    return SVG.with_name(f"csos-desk-{size}.png")


def render_png(size: int) -> bytes:
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        raise SystemExit(f"{SVG} is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return bytes(data.data())


def ico_from_pngs(images: dict[int, bytes]) -> bytes:
    """A Windows .ico holding PNG-compressed images (supported since Windows Vista): header, directory, data."""
    header = struct.pack("<HHH", 0, 1, len(images))
    directory, payload = b"", b""
    offset = 6 + 16 * len(images)
    for size, data in sorted(images.items()):
        edge = 0 if size >= 256 else size  # 0 means 256 in the directory entry
        directory += struct.pack("<BBBBHHII", edge, edge, 0, 0, 1, 32, len(data), offset + len(payload))
        payload += data
    return header + directory + payload


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - Qt needs it alive
    rendered = {size: render_png(size) for size in PNG_SIZES}
    for size, data in rendered.items():
        png_path(size).write_bytes(data)
        print(png_path(size).relative_to(ROOT))
    ICO.parent.mkdir(parents=True, exist_ok=True)
    ICO.write_bytes(ico_from_pngs({size: rendered[size] for size in ICO_SIZES}))
    print(ICO.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
