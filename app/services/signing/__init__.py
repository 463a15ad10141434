"""Signing: the signed order itself, from the order book to the bytes a supplier receives and back.

The ASC X12 codec for the 850 order and the supplier's 855/856/865 answers (``x12``), CMS SignedData (``cms``),
signing an order with the pre-sign check and the read-back (``order_signing``), the one verifier that suppliers,
the pre-sign check and the records check share (``verifier``), and the clock check that must pass before signing
(``clock``).
"""
