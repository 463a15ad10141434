"""A Qt-free wizard engine: a navigation map of views, one data dict, a back stack, and resume from a saved state.

Flows (enrollment, import, renewal, revocation) are plain navigation maps, so their every branch is unit-tested
without a QApplication; the Qt host only renders the current view and hands back what the person typed.

Design choices that matter to the person at the counter:

* Going back keeps what was typed on later pages (nothing is lost), and keeps the record of what already happened
  (an application sent, a key made): a step with a side effect checks the data before doing it again.
* A step can close the way back (``back=False``) once something has left the computer.
* The saved state is JSON in the profile's data folder and never holds a secret: passwords, PINs, sign-in codes,
  reference numbers, access codes and portal session tokens are *transient*. A view that needs one after a restart
  resumes at the step that asks for it again (``resume_to``) — and so does every later move: a resumed wizard never
  arrives at a view whose ``needs`` are gone, it is sent to the page that asks for them first and comes back once
  they are given (``RESUMED_FROM``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import CsosError

log = logging.getLogger(__name__)

STATE_VERSION = 1
RESUMED_FROM = "resumed_from"
Data = dict[str, Any]
NextView = str | Callable[[Data], str | None] | None
Needs = tuple[str, ...] | Callable[[Data], Iterable[str]]
ResumeTo = str | Callable[[Data], str | None] | None

# Names that are never written to disk whatever a flow declares: a safety net under each flow's own list.
_SECRET_WORDS = frozenset({"password", "pin", "secret", "passphrase"})
_SECRET_SUFFIXES = ("access_code", "reference_number", "session_token", "sign_in_code", "document_number",
                    "date_of_birth")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class WizardError(CsosError):
    code = "wizard.error"


class WizardInputError(WizardError):
    """What the person entered on the current view breaks a rule; ``field`` names the entry to point at."""

    code = "wizard.input"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


def is_secret_key(name: str) -> bool:
    """True for data keys that must never be saved (see the module docstring)."""
    lowered = name.lower()
    return bool(_SECRET_WORDS & set(lowered.split("_"))) or lowered.endswith(_SECRET_SUFFIXES)


@dataclass(frozen=True)
class Step:
    """One view of a flow.

    ``next`` names the following view (or computes it from the data); ``accept`` runs when the person presses Next
    and may change the data or raise ``WizardInputError``; ``enter`` prepares a view when it is shown. ``needs`` are
    transient keys the view cannot work without (or a function of the data giving them, when that depends on the
    branch): after a restart they are gone, and the wizard goes to ``resume_to`` (a view, or a function of the data
    choosing one) instead, before it shows this view.
    """

    title: str
    next: NextView = None
    accept: Callable[[Data], None] | None = None
    enter: Callable[[Data], None] | None = None
    last: bool | Callable[[Data], bool] = False
    back: bool = True
    needs: Needs = ()
    resume_to: ResumeTo = None
    slow: bool = False  # the host runs accept/enter off the GUI thread


@dataclass
class Wizard:
    """The state of one run of a flow: where it is, what is known, how it got here."""

    name: str
    navmap: Mapping[str, Step]
    view: str
    data: Data = field(default_factory=dict)
    stack: list[str] = field(default_factory=list)
    transient: frozenset[str] = frozenset()
    on_change: Callable[["Wizard"], None] | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"wizard name {self.name!r} must be a short lower-case identifier")
        for name, step in self.navmap.items():
            if isinstance(step.next, str) and step.next not in self.navmap:
                raise ValueError(f"view {name!r} leads to unknown view {step.next!r}")
            if isinstance(step.resume_to, str) and step.resume_to not in self.navmap:
                raise ValueError(f"view {name!r} resumes at unknown view {step.resume_to!r}")
        self._check_view(self.view)

    # -- where we are ---------------------------------------------------------------------------------------------

    @property
    def step(self) -> Step:
        return self.navmap[self.view]

    @property
    def is_last(self) -> bool:
        last = self.step.last
        return bool(last(self.data) if callable(last) else last)

    @property
    def can_go_back(self) -> bool:
        return bool(self.stack) and self.step.back

    @property
    def path(self) -> list[str]:
        """The views visited to get here, oldest first, then the current one."""
        return [*self.stack, self.view]

    # -- moving ---------------------------------------------------------------------------------------------------

    def enter(self) -> None:
        """Prepare the current view (called by the host when it shows a view for the first time)."""
        if self.step.enter is not None:
            self.step.enter(self.data)

    def next(self, updates: Mapping[str, Any] | None = None) -> str:
        """Take what the person entered, run the view's checks and action, and move on.

        On failure the view stays and the entered values stay in ``data``: the person corrects and tries again.
        """
        if self.is_last:
            raise WizardError("This is the last page; there is nothing after it.", code="wizard.at_end")
        if updates:
            self.data.update(updates)
        step = self.step
        if step.accept is not None:
            step.accept(self.data)
        resumed = self.data.get(RESUMED_FROM)
        if resumed in self.navmap and resumed != self.view and not self.missing(resumed):
            target = resumed  # what was missing is given again: back to where the person left off
        else:
            target = step.next(self.data) if callable(step.next) else step.next
        if target is None:
            raise WizardError(f"The page '{step.title}' does not say where to go next.", code="wizard.no_next")
        self._check_view(target)
        self.stack.append(self.view)
        self.view = self._arrival(target)
        self.enter()
        self._changed()
        return target

    def back(self) -> str:
        if not self.can_go_back:
            raise WizardError("There is no way back from this page.", code="wizard.no_back")
        self.view = self.stack.pop()
        self._changed()
        return self.view

    def jump(self, view: str, *, clear_stack: bool = False) -> str:
        """Go straight to ``view`` (an outside event: approval arrived, resume). Keeps or clears the way back."""
        self._check_view(view)
        if clear_stack:
            self.stack.clear()
        elif view != self.view:
            self.stack.append(self.view)
        self.view = view
        self.enter()
        self._changed()
        return view

    def missing(self, view: str) -> list[str]:
        """The transient entries ``view`` needs that the data lacks now (gone with a restart)."""
        needs = self.navmap[view].needs
        wanted = needs(self.data) if callable(needs) else needs
        return [key for key in wanted if key not in self.data]

    def _resume_target(self, view: str) -> str | None:
        resume_to = self.navmap[view].resume_to
        target = resume_to(self.data) if callable(resume_to) else resume_to
        if target is not None:
            self._check_view(target)
        return target

    def _arrival(self, target: str) -> str:
        """Where a move to ``target`` lands: ``target`` itself, or the page that asks again for what it needs."""
        seen: set[str] = set()
        arrival = target
        while self.missing(arrival) and arrival not in seen:
            seen.add(arrival)
            earlier = self._resume_target(arrival)
            if earlier is None:
                break
            arrival = earlier
        if arrival != target:
            self.data.setdefault(RESUMED_FROM, target)
        elif self.data.get(RESUMED_FROM) == target:
            self.data.pop(RESUMED_FROM)
        return arrival

    def _check_view(self, view: str) -> None:
        if view not in self.navmap:
            raise WizardError(f"The wizard has no page called '{view}'.", code="wizard.unknown_view")

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    # -- saving and resuming --------------------------------------------------------------------------------------

    def _keep(self, key: str) -> bool:
        return key not in self.transient and not is_secret_key(key)

    def snapshot(self, *, now: dt.datetime | None = None) -> dict[str, Any]:
        """The JSON-ready state, without transient or secret values (and without anything JSON cannot hold)."""
        data = {}
        for key, value in self.data.items():
            if not self._keep(key):
                continue
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                continue
            data[key] = value
        return {"wizard": self.name, "version": STATE_VERSION, "view": self.view, "stack": list(self.stack),
                "data": data, "saved_at": (now or dt.datetime.now(dt.timezone.utc)).isoformat()}

    @classmethod
    def restore(cls, state: Mapping[str, Any], navmap: Mapping[str, Step], *, transient: Iterable[str] = (),
                on_change: Callable[["Wizard"], None] | None = None) -> "Wizard":
        """A wizard back where ``state`` left it; a view whose transient needs are gone resumes at ``resume_to``."""
        if state.get("version") != STATE_VERSION or not isinstance(state.get("data"), dict):
            raise WizardError("The saved wizard progress is from another version and cannot be resumed.",
                              code="wizard.state_version")
        view = state.get("view")
        stack = [v for v in state.get("stack") or [] if v in navmap]
        if view not in navmap:
            raise WizardError("The saved wizard progress points at a page that no longer exists.",
                              code="wizard.state_view")
        wizard = cls(name=str(state["wizard"]), navmap=navmap, view=view, data=dict(state["data"]), stack=stack,
                     transient=frozenset(transient))
        seen: set[str] = set()
        original = wizard.view
        while True:
            missing = wizard.missing(wizard.view)
            target = wizard._resume_target(wizard.view) if missing else None
            if target is None or wizard.view in seen:
                break
            seen.add(wizard.view)
            if target in wizard.stack:
                del wizard.stack[wizard.stack.index(target):]
            else:
                wizard.stack.append(wizard.view)
            wizard.view = target
        if wizard.view != original:
            wizard.data.setdefault(RESUMED_FROM, original)  # returns there once the missing entries are given again
        wizard.on_change = on_change
        return wizard


class WizardStateStore:
    """Saved wizard progress: one JSON file per wizard in ``directory`` (the profile's data folder), owner-only."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ValueError(f"bad wizard name {name!r}")
        return self.directory / f"{name}.json"

    def save(self, wizard: Wizard) -> None:
        """Written atomically; a failure to save is logged, never fatal: the person can still finish now."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            target = self.path(wizard.name)
            tmp = target.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(wizard.snapshot(), handle, indent=2, sort_keys=True)
            os.replace(tmp, target)
        except OSError as exc:
            log.warning("wizard progress not saved (%s): %s", wizard.name, exc.strerror or exc)

    def load(self, name: str) -> dict[str, Any] | None:
        path = self.path(name)
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("wizard progress unreadable (%s): %s", name, exc.strerror or exc)
            return None
        try:
            state = json.loads(text)
        except ValueError:
            log.warning("wizard progress damaged (%s); starting over", name)
            return None
        return state if isinstance(state, dict) else None

    def discard(self, name: str) -> None:
        try:
            self.path(name).unlink()
        except FileNotFoundError:
            pass

    def saved(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.json"))


__all__ = ["RESUMED_FROM", "STATE_VERSION", "Step", "Wizard", "WizardError", "WizardInputError", "WizardStateStore",
           "is_secret_key"]
