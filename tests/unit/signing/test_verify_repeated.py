"""Verifying the same signer's orders again and again (the caches of the verify path: plain CMS and 850 readers,
certificate view, DEA match) gives the same verdicts as the first time, for accepted and refused orders alike."""

from __future__ import annotations

import dataclasses

from tests.integration.test_verifier import make_order, sign, subscriber_for, verifier, world, x12  # noqa: F401
from tests.pki import OTHER_DEA


def test_repeated_verification_gives_the_same_verdicts(world, verifier):  # noqa: F811
    pki, _ = world
    subscriber = subscriber_for(pki)
    good = make_order()
    other_pharmacy = dataclasses.replace(good, purchaser=dataclasses.replace(good.purchaser, dea_number=OTHER_DEA))
    documents = [sign(pki, subscriber, x12(good)), sign(pki, subscriber, x12(other_pharmacy)),
                 sign(pki, subscriber_for(pki, dea=OTHER_DEA), x12(good))]
    first = [verifier.verify(document).to_json() for document in documents]
    assert [[reason["code"] for reason in verdict["reasons"]] for verdict in first] == [
        [], ["dea_number_mismatch"], ["dea_number_mismatch"]]
    for _ in range(3):
        assert [verifier.verify(document).to_json() for document in reversed(documents)] == first[::-1]
