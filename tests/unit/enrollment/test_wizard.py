"""The Qt-free wizard engine: navigation, branches, back stack, failures that lose nothing, resume without secrets."""

from __future__ import annotations

import json
import os

import pytest

from app.services.enrollment.wizard import (
    RESUMED_FROM,
    Step,
    Wizard,
    WizardError,
    WizardInputError,
    WizardStateStore,
    is_secret_key,
)


def need_name(data):
    if not data.get("name"):
        raise WizardInputError("Enter a name.", field="name")


def navmap(entered=None):
    entered = entered if entered is not None else []
    return {
        "start": Step("Start", next="name"),
        "name": Step("Name", accept=need_name, next=lambda d: "pin" if d.get("use_token") else "password"),
        "password": Step("Password", next="send", enter=lambda d: entered.append("password")),
        "pin": Step("PIN", next="send"),
        "send": Step("Send", next="wait", needs=("password",), resume_to="password"),
        "wait": Step("Wait", next="done", back=False),
        "done": Step("Done", last=True),
    }


def test_next_follows_branches_and_back_returns_keeping_what_was_typed():
    entered = []
    wizard = Wizard(name="demo", navmap=navmap(entered), view="start")
    wizard.next()
    assert wizard.next({"name": "Pat", "use_token": False}) == "password" and entered == ["password"]
    assert wizard.back() == "name" and wizard.data["name"] == "Pat"
    assert wizard.next({"use_token": True}) == "pin"
    assert wizard.path == ["start", "name", "pin"]


def test_a_refused_step_stays_and_keeps_the_entries():
    wizard = Wizard(name="demo", navmap=navmap(), view="name")
    with pytest.raises(WizardInputError) as caught:
        wizard.next({"name": "", "note": "typed"})
    assert caught.value.field == "name" and wizard.view == "name" and wizard.data["note"] == "typed"


def test_no_way_back_after_a_step_that_closes_it_and_nothing_after_the_last():
    wizard = Wizard(name="demo", navmap=navmap(), view="wait", stack=["send"])
    assert not wizard.can_go_back
    with pytest.raises(WizardError):
        wizard.back()
    wizard.next()
    assert wizard.is_last
    with pytest.raises(WizardError) as caught:
        wizard.next()
    assert caught.value.code == "wizard.at_end"


def test_jump_for_outside_events_and_unknown_views_are_refused():
    wizard = Wizard(name="demo", navmap=navmap(), view="wait")
    wizard.jump("done")
    assert wizard.view == "done" and wizard.stack == ["wait"]
    with pytest.raises(WizardError):
        wizard.jump("nowhere")
    with pytest.raises(ValueError):
        Wizard(name="demo", navmap={"a": Step("A", next="missing")}, view="a")


def test_snapshot_never_holds_secrets_or_transient_values():
    wizard = Wizard(name="demo", navmap=navmap(), view="send", transient=frozenset({"challenge_id"}),
                    data={"name": "Pat", "password": "hunter2-long-enough", "key_pin": "123456",
                          "access_code": "ABCD", "reference_number": "1234", "challenge_id": "c1",
                          "identity_document_number": "D1", "date_of_birth": "1980-01-01",
                          "token_serial": "abc", "object": object()})
    saved = json.dumps(wizard.snapshot())
    for secret in ("hunter2", "123456", "ABCD", "1234", "c1", "D1", "1980-01-01"):
        assert secret not in saved
    assert "token_serial" in saved and "Pat" in saved
    assert is_secret_key("portal_session_token") and not is_secret_key("token_label")


def test_resume_goes_back_to_the_view_that_asks_for_a_missing_secret(tmp_path):
    store = WizardStateStore(tmp_path / "wizards")
    wizard = Wizard(name="demo", navmap=navmap(), view="start")
    wizard.on_change = store.save
    wizard.next()
    wizard.next({"name": "Pat"})
    wizard.next({"password": "kept only in memory"})
    assert wizard.view == "send"
    state = store.load("demo")
    assert state["view"] == "send" and "kept only" not in store.path("demo").read_text()
    if os.name == "posix":
        assert store.path("demo").stat().st_mode & 0o077 == 0
    resumed = Wizard.restore(state, navmap())
    assert resumed.view == "password" and resumed.data[RESUMED_FROM] == "send"
    assert resumed.stack == ["start", "name"]
    resumed.next({"password": "again"})
    assert resumed.view == "send"


def test_resume_where_nothing_is_missing_and_damaged_or_old_state(tmp_path):
    store = WizardStateStore(tmp_path)
    wizard = Wizard(name="demo", navmap=navmap(), view="wait", stack=["start", "name", "password", "send"])
    store.save(wizard)
    resumed = Wizard.restore(store.load("demo"), navmap())
    assert resumed.view == "wait" and RESUMED_FROM not in resumed.data
    store.path("demo").write_text("{not json")
    assert store.load("demo") is None
    with pytest.raises(WizardError):
        Wizard.restore({"wizard": "demo", "version": 99, "view": "wait", "data": {}}, navmap())
    with pytest.raises(WizardError):
        Wizard.restore({"wizard": "demo", "version": 1, "view": "gone", "data": {}}, navmap())
    store.discard("demo")
    store.discard("demo")
    assert store.saved() == []
