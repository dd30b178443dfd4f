"""Errors raised for a bad sweep spec, before any trial starts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["RestoreFailed", "SpecError", "SpecErrors", "raise_all"]


class SpecError(ValueError):
    """A problem in a sweep file, located by file and dotted key.

    Args:
        message: What is wrong and the expected form, e.g. "loguniform bounds must be > 0, got [0.0, 0.1]".
        file: The YAML file the value came from, if any.
        key: Dotted path of the offending key, e.g. "search_space.lr" or "collapse[0].patience".

    Example:
        >>> str(SpecError("must be >= 1, got 0", file="sweeps/x.yaml", key="num_samples"))
        'sweeps/x.yaml: num_samples: must be >= 1, got 0'
    """

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.key = key

    def __str__(self) -> str:
        return "".join(f"{part}: " for part in (self.file, self.key) if part) + self.message

    def __reduce__(self):  # keyword-only args: default exception pickling would drop file and key
        return _rebuild, (type(self), self.message, self.file, self.key)

    @property
    def errors(self) -> tuple[SpecError, ...]:
        """The individual errors: just this one (SpecErrors overrides)."""
        return (self,)

    def within(self, prefix: str) -> SpecError:
        """The same errors with `prefix` put in front of their keys ("scheduler" + "grace_period")."""
        return _join([_copy(e, key=_prefix_key(prefix, e.key)) for e in self.errors])

    def in_file(self, file: str) -> SpecError:
        """The same errors, attributed to `file` where they have no file yet."""
        return _join([_copy(e, file=e.file or file) for e in self.errors])


class SpecErrors(SpecError):
    """Several SpecErrors reported at once, so `validate` can print all of them.

    Example:
        >>> err = SpecErrors([SpecError("unknown key", key="a"), SpecError("unknown key", key="b")])
        >>> [e.key for e in err.errors]
        ['a', 'b']
    """

    def __init__(self, errors: Sequence[SpecError]) -> None:
        flat = tuple(e for err in errors for e in err.errors)
        if not flat:
            raise ValueError("SpecErrors needs at least one error")
        files = {e.file for e in flat}
        super().__init__(f"{len(flat)} problems", file=files.pop() if len(files) == 1 else None)
        self._errors = flat

    def __str__(self) -> str:
        return f"{len(self._errors)} problems:\n" + "\n".join(f"  - {e}" for e in self._errors)

    def __reduce__(self):
        return type(self), (self._errors,)

    @property
    def errors(self) -> tuple[SpecError, ...]:
        return self._errors


def raise_all(errors: Iterable[SpecError]) -> None:
    """Raise the collected errors (one SpecError, or a SpecErrors for several); do nothing if none."""
    errors = list(errors)
    if errors:
        raise _join(errors)


def _join(errors: Sequence[SpecError]) -> SpecError:
    flat = [e for err in errors for e in err.errors]
    return flat[0] if len(flat) == 1 else SpecErrors(flat)


def _copy(err: SpecError, **changes: str | None) -> SpecError:
    fields = {"file": err.file, "key": err.key, **changes}
    return _rebuild(type(err), err.message, fields["file"], fields["key"])


def _rebuild(cls: type[SpecError], message: str, file: str | None, key: str | None) -> SpecError:
    return cls(message, file=file, key=key)


def _prefix_key(prefix: str, key: str | None) -> str:
    if not key:
        return prefix
    return f"{prefix}{key}" if key.startswith("[") else f"{prefix}.{key}"


class RestoreFailed(BaseException):
    """Ray could not restore a sweep for `resume`; the results folder was left as it was.

    A BaseException, so that Tune's own `except Exception` around its restore (which would
    log the error and start the sweep over in the same folder) lets it through.
    """


class RayInternalsMoved(ImportError):
    """The installed Ray lacks private names collapsetune relies on (`collapsetune._ray.RELIED_ON`);
    the message names each one, the Ray version, and the Ray to install."""
