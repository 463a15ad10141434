"""Messages a pharmacist reads carry no duty codes such as "(S4)" or "(O5)": the codes stay in ``code`` (issue 19)."""

from __future__ import annotations

import ast
import datetime as dt
import re
from pathlib import Path
from types import SimpleNamespace

from app.services.signing.verifier import signer_reasons, time_reasons

ROOT = Path(__file__).resolve().parents[3]
DUTY_CODE = re.compile(r"\((?:[SOKTPR]\d+)\)")


def test_verifier_reasons_are_plain_words_and_keep_their_codes():
    reasons = signer_reasons(SimpleNamespace(can_sign_orders=False, subscriber_name="Pat Coordinator"))
    now = dt.datetime(2026, 12, 4, tzinfo=dt.timezone.utc)
    reasons += time_reasons(now - dt.timedelta(days=61), now)
    assert [r.code for r in reasons] == ["not_signing_certificate", "order_expired"]
    for reason in reasons:
        assert not DUTY_CODE.search(reason.message), reason.message


def test_no_duty_code_in_any_message_text_of_the_verifier_cms_and_portal():
    for relative in ("app/services/signing/verifier.py", "app/services/signing/cms.py", "app/sandbox/portal.py"):
        tree = ast.parse((ROOT / relative).read_text())
        texts = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        found = [t for t in texts if DUTY_CODE.search(t)]
        assert not found, (relative, found)
