"""The row type of the settings table, and the field helper that declares a setting with it.

:class:`Spec` says how a setting is given (flag, ``SIOCTL_*`` variable, gunicorn key), bounded
and explained; :func:`setting` declares a dataclass field with its spec, and :func:`specs_of`
reads the specs back. The table itself is ``Settings`` in :mod:`.settings`. Pure data: no click.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ENV_PREFIX = "SIOCTL_"
# A value of this many seconds or more under a seconds setting is taken for milliseconds (an
# egg / engine.io habit: pingInterval 25000) and refused with a hint; 1000 s is ~17 minutes,
# more than a ping, connect, keep-alive or header deadline means. Settings where a long value
# is a real choice (gunicorn's timeout and graceful_timeout: an hour of draining) set their own
# threshold (Spec.millis_from).
MILLIS_FROM = 1000


def millis_problem(value: Any, egg_name: str | None = None,
                   millis_from: float = MILLIS_FROM) -> str | None:
    """Why ``value`` (given for a setting in seconds) looks like milliseconds, or None.

    ``egg_name`` is the setting's engine.io name (in ms), offered as the other way out.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < millis_from:
        return None
    other = f" or {egg_name}" if egg_name else ""
    return f"seconds; {_plain(value)} looks like milliseconds — use {_plain(value / 1000)}{other}"


def _plain(number: float) -> str:
    """``number`` as a person writes it: 86400000, 25, 0.5 (never 8.64e+07)."""
    return str(int(number)) if float(number).is_integer() else repr(float(number))


@dataclass(frozen=True)
class Spec:
    """How one setting is given, checked and explained: a row of the settings table.

    ``flags`` are click's declarations (``("-w", "--workers")``, ``("--daemon/--no-daemon",)``);
    a setting without flags says why in ``no_flag``. ``help`` may name ``{default}`` and
    ``{env}``. ``name`` and ``kind`` (the field's type) are filled in from the field.
    """

    default: Any = dataclasses.MISSING
    flags: tuple[str, ...] = ()
    metavar: str | None = None
    minimum: int | None = None
    choices: tuple[str, ...] = ()
    ignore_case: bool = False
    # None if a value (each item of a list) is usable, else why not.
    check: Callable[[Any], str | None] | None = None
    # The flag may be repeated (each value may also hold several, see cli/config.py).
    multiple: bool = False
    gunicorn: str | None = None
    # Turns the value gunicorn's config model holds into this setting's (None: the same).
    from_gunicorn: Callable[[Any], Any] | None = None
    # The value is in seconds: a milliseconds-looking one (millis_from or more) is refused
    # (see millis_problem).
    seconds: bool = False
    millis_from: float = MILLIS_FROM
    help: str = ""
    no_flag: str = ""
    # Only for a setting without flags that still reads a variable (the APP argument).
    env_name: str | None = None
    name: str = ""
    kind: Any = None

    @property
    def long_flag(self) -> str | None:
        """The first ``--name`` among the flags, without its ``/--no-name`` half."""
        for decl in self.flags:
            if decl.startswith("--"):
                return decl.split("/")[0]
        return None

    @property
    def option(self) -> str:
        """The name click gives the option's value (``--log-level`` -> ``log_level``)."""
        flag = self.long_flag
        return flag[2:].replace("-", "_") if flag else self.name

    @property
    def env(self) -> str | None:
        """The ``SIOCTL_*`` variable that gives this setting (``--log-level`` -> LOG_LEVEL)."""
        if self.env_name:
            return self.env_name
        return ENV_PREFIX + self.option.upper() if self.flags else None

    @property
    def help_text(self) -> str:
        """The help with its default and variable filled in."""
        return self.help.format(default=show(self.default), env=self.env)

    def problem(self, value: Any) -> str | None:
        """None if ``value`` is within the bounds and passes the check, else why not (one
        line); None is always accepted (not set)."""
        if value is None:
            return None
        if self.minimum is not None and value < self.minimum:
            return f"{value} is below {self.kind(self.minimum)}"
        if self.seconds and millis_problem(value, millis_from=self.millis_from):
            return millis_problem(value, millis_from=self.millis_from)
        if self.choices and value not in self.choices:
            return f"{value!r} is not one of {', '.join(self.choices)}"
        if self.check is not None:
            for item in value if isinstance(value, list) else [value]:
                problem = self.check(item)
                if problem:
                    return problem
        return None


def show(value: Any) -> str:
    """A default as help texts write it: 45.0 as 45, a list as its items."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return " ".join(str(item) for item in value)
    return str(value)


def setting(default: Any = dataclasses.MISSING, **spec: Any) -> Any:
    """A :class:`Settings` field with its :class:`Spec`; a list default is copied per instance."""
    metadata = {"spec": Spec(default=default, **spec)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def specs_of(cls: type) -> tuple[Spec, ...]:
    """The specs of a dataclass declared with :func:`setting`, names and kinds filled in.

    Raises TypeError for a field declared without its spec: a setting is never half-added.
    """
    kinds = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        if "spec" not in f.metadata:
            raise TypeError(f"{cls.__name__}.{f.name} is declared without setting(...)")
        specs.append(dataclasses.replace(f.metadata["spec"], name=f.name, kind=kinds[f.name]))
    return tuple(specs)
