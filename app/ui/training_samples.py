"""Practice documents for training, drawn with Qt's PDF writer: the sample power of attorney a trainee attaches
when applying as Power of Attorney (the wording of 21 CFR 1305.05(d), filled in for the practice pharmacy).

The PDF is committed in resources/training/ (``app.training.SAMPLE_POA``); ``write_sample_poa`` makes it again
(tests check the committed file is what it writes, in substance).
"""

from __future__ import annotations

import html
from pathlib import Path

PHARMACY = {"name": "Main Street Pharmacy", "address": "1 Main St, Springfield, IL 62701",
            "dea": "BJ6125341", "registrant": "Morgan Owner", "attorney": "Pat Purchaser"}

POA_TEXT = (
    "I, {registrant} (name of person granting power), the undersigned, who am authorized to sign the current "
    "application for registration of the above-named registrant under the Controlled Substances Act or Controlled "
    "Substances Import and Export Act, have made, constituted, and appointed, and by these presents, do make, "
    "constitute, and appoint {attorney} (name of attorney-in-fact), my true and lawful attorney for me in my name, "
    "place, and stead, to execute applications for Forms 222 and to sign orders for Schedule I and II controlled "
    "substances, whether these orders be on Form 222 or electronic, in accordance with 21 U.S.C. 828 and Part 1305 "
    "of Title 21 of the Code of Federal Regulations. I hereby ratify and confirm all that said attorney must "
    "lawfully do by virtue hereof.")
AFFIRMATION = ("I, {attorney} (name of attorney-in-fact), hereby affirm that I am the person named herein as "
               "attorney-in-fact and that the signature affixed hereto is my signature.")


def sample_poa_html(values: dict[str, str] | None = None) -> str:
    v = {k: html.escape(x) for k, x in (values or PHARMACY).items()}
    return f"""
<p style="color:#a05a00"><b>TRAINING SAMPLE — practice document for CSOS Desk training, not a legal document.</b></p>
<h2 align="center">POWER OF ATTORNEY for DEA Forms 222 and Electronic Orders</h2>
<p>{v['name']}<br><i>(Name of registrant)</i></p>
<p>{v['address']}<br><i>(Address of registrant)</i></p>
<p>{v['dea']}<br><i>(DEA registration number)</i></p>
<p>{POA_TEXT.format(registrant=v['registrant'], attorney=v['attorney'])}</p>
<p>/s/ {v['registrant']} (practice)<br><i>(Signature of person granting power)</i></p>
<p>{AFFIRMATION.format(attorney=v['attorney'])}</p>
<p>/s/ {v['attorney']} (practice)<br><i>(Signature of attorney-in-fact)</i></p>
<p>Witnesses:<br>1. Casey Coordinator (practice)<br>2. Dana Witness (practice)</p>
<p>Signed and dated on the 2nd day of March, 2026, at Springfield, IL.</p>
"""


def write_sample_poa(path: str | Path, values: dict[str, str] | None = None) -> Path:
    """Draw the sample power of attorney into ``path`` (US Letter PDF); needs a Qt GUI application."""
    from PySide6.QtCore import QMarginsF, QSizeF
    from PySide6.QtGui import QPageLayout, QPageSize, QPdfWriter, QTextDocument

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    writer = QPdfWriter(str(target))
    writer.setTitle("Power of attorney — training sample")
    writer.setCreator("CSOS Desk training")
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.Letter), QPageLayout.Orientation.Portrait,
                                     QMarginsF(20, 20, 20, 20), QPageLayout.Unit.Millimeter))
    writer.setResolution(300)
    document = QTextDocument()
    document.setHtml(sample_poa_html(values))
    document.setPageSize(QSizeF(writer.width(), writer.height()))
    document.print_(writer)
    del writer  # the file is finished when the writer goes
    return target


__all__ = ["POA_TEXT", "sample_poa_html", "write_sample_poa"]
