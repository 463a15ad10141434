"""Transport: how a signed order reaches a supplier and how the supplier's answers come back.

One connector interface with one implementation per way of reaching a supplier: over HTTPS, through an EDI drop
folder, or as a file the pharmacy uploads to the supplier's website itself (``connectors``).
"""
