"""Model wrappers by name: a built-in short name or "package.module:Class".

Example:
    >>> resolve_trainable("mywrap:Toy", [Path("sweeps")])  # doctest: +SKIP
    <class 'mywrap.Toy'>
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import sysconfig
from collections.abc import Iterator, Sequence
from pathlib import Path

from collapsetune.errors import SpecError

__all__ = ["TRAINABLES", "has_state", "resolve_trainable", "wrapper_module_path", "wrapper_modules",
           "wrapper_search_dirs"]

TRAINABLES = {
    "bitnet_lm": "trainables.bitnet_lm:BitNetLM",
    "mop_clip": "trainables.mop_clip:MopClip",
    "audio_caption": "trainables.audio_caption:AudioCaption",
}

# Checked before importing: importlib raises odd errors (or imports relative names) on junk.
_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
# Where the installed library lives: wrappers there are importable on every worker already.
_INSTALLED_PACKAGES = ("collapsetune", "trainables")


def wrapper_search_dirs(sweep_dir: Path) -> tuple[Path, ...]:
    """Where a sweep's `module:Class` wrapper may live beyond sys.path: beside the sweep file
    (`sweep_dir`), or in the directory the sweep is launched from. The one place these
    folders are chosen: `load_sweep`, the launch and the trials' plan all take them from here.
    """
    return (Path(sweep_dir), Path.cwd())


def resolve_trainable(name: str, search_dirs: Sequence[Path] = ()) -> type:
    """Import the wrapper class a sweep names; a function there (`train(config)`, a user's own
    loop) comes back as its wrapper class (`collapsetune.function`).

    A built-in short name always imports the installed `trainables` package: the search dirs
    are not put on sys.path for it, and neither they nor the cwd are searched even when Python
    put the cwd there (`python -m`), so a `trainables/` folder planted beside a sweep never runs.

    Args:
        name: A key of TRAINABLES or "package.module:Class".
        search_dirs: Folders put at the front of sys.path while importing a "module:Class"
            (the sweep file's folder and the cwd), so a wrapper module beside the sweep is found.

    Returns:
        The class; it has a `step` method.

    Raises:
        SpecError: unknown short name (lists the valid ones), module not importable (with the
            ImportError text), no such class (with a close name if there is one), or the class
            has no `step`.
    """
    module_name, class_name = _target(name)
    search_dirs = _unique(search_dirs)
    builtin = name in TRAINABLES
    with _without(search_dirs) if builtin else _front_of_sys_path(search_dirs):
        importlib.invalidate_caches()  # a wrapper written after start-up must still be found
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if builtin and getattr(exc, "name", None) in (module_name, module_name.split(".")[0]):
                raise SpecError(
                    f"built-in trainable {name!r} is not available in this install "
                    f"({module_name} does not exist yet); valid names: {_names()}"
                ) from None
            raise SpecError(
                f"cannot import module {module_name!r} for trainable {name!r}: {exc} "
                f"(looked in {_shown(search_dirs)} and sys.path)"
            ) from None
        except Exception as exc:  # the user's module ran and failed: report it as a spec problem
            raise SpecError(
                f"importing module {module_name!r} for trainable {name!r} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        except SystemExit as exc:  # sys.exit() at import (a script's main guard missing) ends nothing here
            raise SpecError(
                f"importing module {module_name!r} for trainable {name!r} ended with SystemExit({exc.code!r}); "
                "a wrapper module must not exit on import (put script code under `if __name__ == '__main__':`)"
            ) from None
    cls = getattr(module, class_name, None)
    if inspect.isfunction(cls):  # a user's own loop, train(config), reporting through collapsetune.session
        from collapsetune.function import function_wrapper

        return function_wrapper(cls)
    if not isinstance(cls, type):
        found = "no such attribute" if cls is None else f"found {type(cls).__name__}"
        hint = _close_class(module, class_name)
        raise SpecError(f"module {module_name!r} has no class or function {class_name!r} ({found}){hint}")
    if not callable(getattr(cls, "step", None)):
        raise SpecError(
            f"class {module_name}:{class_name} has no step() method; a wrapper needs "
            "__init__(self, config) and step(self) -> dict[str, float]"
        )
    return cls


def has_state(wrapper_cls: type) -> bool:
    """Whether a wrapper can be checkpointed (both optional methods present)."""
    return all(callable(getattr(wrapper_cls, m, None)) for m in ("state_dict", "load_state_dict"))


def wrapper_module_path(name: str, search_dirs: Sequence[Path] = ()) -> Path | None:
    """Where the wrapper's top-level module lives, if Ray workers must be sent it.

    Args:
        name: As for resolve_trainable.
        search_dirs: As for resolve_trainable.

    Returns:
        The module file or package directory when it lies outside site-packages, the standard
        library and the installed collapsetune/trainables packages (so the Ray glue can ship
        it with runtime_env py_modules); None otherwise or when it cannot be found.
    """
    module_name, _ = _target(name)
    top = module_name.split(".")[0]
    if top in _INSTALLED_PACKAGES:
        return None
    with _front_of_sys_path(search_dirs):
        importlib.invalidate_caches()
        module = sys.modules.get(top)
        try:
            spec = module.__spec__ if module is not None else importlib.util.find_spec(top)
        except (ImportError, ValueError):
            return None
    if spec is None:
        return None
    if spec.submodule_search_locations:  # a package (regular or namespace): ship the folder
        path = Path(next(iter(spec.submodule_search_locations)))
    elif spec.origin and spec.has_location:
        path = Path(spec.origin)
    else:  # built-in or frozen module
        return None
    path = path.resolve()
    return None if any(path.is_relative_to(root) for root in _installed_roots()) else path


def wrapper_modules(name: str, search_dirs: Sequence[Path] = ()) -> list[Path]:
    """What Ray's workers must be sent for a user's wrapper: its top-level module or package,
    then the local modules and packages it imports, transitively (a helper module, a `models/`
    package), found by reading their `import` statements, never by importing them. Scratch
    scripts and data beside it stay behind. Empty for built-in and installed wrappers.

    The names of collapsetune's own packages are never shipped: a `trainables/` planted
    beside a sweep must not shadow the installed one on the workers.
    """
    top = wrapper_module_path(name, search_dirs)
    if top is None:
        return []
    places = list(dict.fromkeys(p.resolve() for p in (top.parent, *search_dirs)))
    shipped, queue = [top], [top]
    while queue:
        for imported in sorted(_local_imports(queue.pop(0))):
            found = next((p for folder in places for p in (folder / f"{imported}.py", folder / imported)
                          if p.is_file() or (p / "__init__.py").is_file()), None)
            if found is not None and found.resolve() not in shipped:
                shipped.append(found.resolve())
                queue.append(found.resolve())
    return shipped


def _local_imports(module: Path) -> set[str]:
    """The top-level names a module file (or every file of a package folder) imports, anywhere
    in its code; relative imports stay inside the package and add nothing. collapsetune's own
    packages and private names are left out."""
    names = set()
    for file in sorted(module.rglob("*.py")) if module.is_dir() else [module]:
        try:
            tree = ast.parse(file.read_bytes(), filename=str(file))
        except (SyntaxError, ValueError, OSError):
            continue  # the worker's import will say what is wrong with it
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in _INSTALLED_PACKAGES and not n.startswith("_")}


def _target(name: str) -> tuple[str, str]:
    """(module, class) for a short name or "module:Class"; SpecError for anything else."""
    if not isinstance(name, str):
        raise SpecError(f"expected a built-in name ({_names()}) or 'package.module:Class', got {name!r}")
    if ":" not in name:
        if name not in TRAINABLES:
            close = difflib.get_close_matches(name, TRAINABLES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SpecError(
                f"unknown trainable {name!r}{hint}; valid names: {_names()}, "
                "or 'package.module:Class' for your own wrapper"
            )
        name = TRAINABLES[name]
    module_name, _, class_name = name.partition(":")
    if not _MODULE.match(module_name) or not class_name.isidentifier():
        raise SpecError(f"expected 'package.module:Class' (Python identifiers), got {name!r}")
    return module_name, class_name


@contextlib.contextmanager
def _front_of_sys_path(dirs: Sequence[Path]) -> Iterator[None]:
    added = [str(Path(d).resolve()) for d in dirs]
    sys.path[:0] = added
    try:
        yield
    finally:
        for entry in added:  # remove exactly what we added, even if the import changed sys.path
            if entry in sys.path:
                sys.path.remove(entry)


@contextlib.contextmanager
def _without(dirs: Sequence[Path]) -> Iterator[None]:
    """sys.path without `dirs`, the cwd and '' while importing a built-in, unless PYTHONPATH
    names the folder (a developer pointing Python at a checkout on purpose)."""
    chosen = {str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    planted = {str(Path(d).resolve()) for d in [*dirs, Path.cwd()]} - chosen
    saved = list(sys.path)
    sys.path[:] = [p for p in saved if p not in ("", ".") and str(Path(p).resolve()) not in planted]
    try:
        yield
    finally:
        sys.path[:] = saved


def _installed_roots() -> list[Path]:
    roots = {Path(p).resolve() for key in ("purelib", "platlib", "stdlib", "platstdlib")
             if (p := sysconfig.get_paths().get(key))}
    roots.update(Path(p).resolve() for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages")))
    for package in _INSTALLED_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            roots.update(Path(p).resolve() for p in spec.submodule_search_locations)
    return sorted(roots)


def _names() -> str:
    return ", ".join(sorted(TRAINABLES))


def _unique(dirs: Sequence[Path]) -> list[Path]:
    """`dirs` resolved, each once (the sweep's folder is often the cwd)."""
    return list(dict.fromkeys(Path(d).resolve() for d in dirs))


def _shown(dirs: Sequence[Path]) -> str:
    return ", ".join(str(d) for d in dirs) or "no extra folders"


def _close_class(module: object, wanted: str) -> str:
    """' (did you mean 'Toy'?)' for a misspelt class or function name, case-only typos first."""
    classes = [k for k, v in vars(module).items()
               if (isinstance(v, type) or inspect.isfunction(v)) and not k.startswith("_")]
    close = [k for k in classes if k.lower() == wanted.lower()] or difflib.get_close_matches(wanted, classes, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
