"""Transport: how a signed order reaches a supplier and how the supplier's answers come back.

One connector interface with one implementation per way of reaching a supplier: over HTTPS, through an EDI drop
folder, or as a file the pharmacy uploads to the supplier's website itself (``connectors``), or over AS2
(``as2``, which registers its kind with ``connectors.connector_for`` when the package loads).
"""

from app.services.transport import as2  # noqa: F401 - registers the as2 connector kind
