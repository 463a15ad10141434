"""FDA's NDC Directory as a person downloads it (issue 22): the zip, its product.txt, or the folder; a zip that is not
FDA's is refused in plain words with where to get the right one. Real files, real SQLite."""

from __future__ import annotations

import zipfile

import pytest
from sqlalchemy import func, select

from app.errors import CatalogImportError
from app.models.orderbook import Product
from app.services.catalog import bundled_catalog_paths, import_fda_download


def _count(db) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Product))


def test_the_ndc_directory_zip_imports_like_its_two_text_files(db, tmp_path):
    product, package = bundled_catalog_paths()
    archive = tmp_path / "ndctext.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.write(product, "product.txt")
        out.write(package, "package.txt")
        out.writestr("README.xls", b"not read")
    seen = []
    summary = import_fda_download(db, archive, progress=lambda done, total: seen.append((done, total)))
    assert summary.packages > 0 and _count(db) == summary.packages and seen and seen[-1][0] == seen[-1][1]
    again = import_fda_download(db, product)  # product.txt chosen: package.txt beside it
    assert again.packages == summary.packages and _count(db) == summary.packages


def test_a_zip_without_the_fda_files_or_not_a_zip_is_refused_with_where_to_download(db, tmp_path):
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as out:
        out.writestr("product.txt", "PRODUCTID\tPRODUCTNDC\n")
    with pytest.raises(CatalogImportError) as caught:
        import_fda_download(db, other)
    assert caught.value.code == "catalog.zip_member_missing" and "National Drug Code Directory" in caught.value.message
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(CatalogImportError) as caught:
        import_fda_download(db, junk)
    assert caught.value.code == "catalog.not_a_zip"
    assert _count(db) == 0
