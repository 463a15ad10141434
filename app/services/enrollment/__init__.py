"""Enrollment: getting, renewing and revoking a CSOS certificate, as Qt-free wizard flows.

The wizard engine (``wizard``: a navigation map of views, a data dict, a back stack), who issues certificates
(``authority``: the training portal's API or DEA's web portal, guided), and the flows the wizard host renders, one
module each: ``enroll_flow`` (new enrollment), ``import_flow`` (an existing .p12/.pfx), ``renewal_flow`` and
``revocation_flow``, over ``flow_common`` (the ``Flow`` base and the steps they share). ``certificate_overview`` gives
the certificates page its rows; ``flows`` is the index (every flow by name, saved progress) and re-exports the names.
"""
