"""Enrollment: getting, renewing and revoking a CSOS certificate, as Qt-free wizard flows.

The wizard engine (``wizard``: a navigation map of views, a data dict, a back stack), who issues certificates
(``authority``: the training portal's API or DEA's web portal, guided), and the flows the wizard host renders —
enrollment, import of an existing certificate, renewal and revocation.
"""
