"""Load an ASGI application from an import path such as ``"examples.chat.app:app"``.

``lilya run`` loads the app itself before it hands anything to the server, so
that a path that does not load ends in one paragraph saying which module, which
attribute and what went wrong, instead of a server's traceback. The four ways it
fails are told apart because each has a different fix:

* the path is not ``module:attribute`` (a typo on the command line);
* the module is not found (wrong name, or run from the wrong directory);
* importing the module raised (a bug in it, or one of *its* imports is missing);
* the module has no such attribute (a typo, or the app has another name).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, Final

__all__ = ["AppImportError", "add_app_dir", "import_app", "split_import_path"]

_EXAMPLE: Final = '"module:attribute", e.g. "examples.chat.app:app"'


class AppImportError(ImportError):
    """An import path did not give an ASGI application.

    ``str()`` is one paragraph a person can act on.

    Attributes:
        import_path: the path as given, e.g. ``"myapp.main:app"``.
        module: the module part (``""`` when the path has none).
        attribute: the attribute part (``""`` when the path has none).
        problem: ``"syntax"``, ``"module-not-found"``, ``"import-error"``,
            ``"attribute-missing"``, ``"factory-error"`` or ``"not-an-app"``.
    """

    def __init__(
        self, message: str, *, import_path: str, module: str, attribute: str, problem: str
    ) -> None:
        super().__init__(message)
        self.import_path = import_path
        self.module = module
        self.attribute = attribute
        self.problem = problem


def split_import_path(import_path: str) -> tuple[str, str]:
    """Split ``"package.module:attr.sub"`` into its module and attribute parts.

    Raises:
        AppImportError: the path is not ``module:attribute`` with dotted
            identifiers on both sides (``problem == "syntax"``).
    """
    module, colon, attribute = import_path.partition(":")
    if not colon:
        why = "it has no colon"
    elif ":" in attribute:
        why = "it has more than one colon"
    elif not module:
        why = "the module part before the colon is empty"
    elif not attribute:
        why = "the attribute part after the colon is empty"
    elif not _dotted_identifier(module):
        why = f"{module!r} is not a dotted module name"
    elif not _dotted_identifier(attribute):
        why = f"{attribute!r} is not a dotted attribute name"
    else:
        return module, attribute
    raise AppImportError(
        f'Cannot load "{import_path}": {why}. Give the app as {_EXAMPLE}.',
        import_path=import_path,
        module=module if colon else "",
        attribute=attribute,
        problem="syntax",
    )


def _dotted_identifier(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def import_app(import_path: str, *, factory: bool = False) -> Callable[..., Any]:
    """Import the application that *import_path* names and return it.

    Args:
        import_path: ``"module:attribute"``; the attribute may be dotted
            (``"module:holder.app"``).
        factory: the attribute is a function that takes no arguments and
            returns the application; call it.

    Raises:
        AppImportError: the path does not give an application; ``str()`` of
            it says which part failed and why.
    """
    module_name, attribute = split_import_path(import_path)

    def fail(problem: str, message: str) -> AppImportError:
        return AppImportError(
            f'Cannot load "{import_path}": {message}',
            import_path=import_path,
            module=module_name,
            attribute=attribute,
            problem=problem,
        )

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise fail(
                "module-not-found",
                f'module "{module_name}" was not found (No module named {missing!r}). '
                f"Check the spelling, run lilya from the directory that contains it "
                f"(now {os.getcwd()}), or pass --app-dir.",
            ) from None
        raise fail("import-error", _raised_while_importing(module_name, exc)) from None
    except Exception as exc:
        raise fail("import-error", _raised_while_importing(module_name, exc)) from None

    app: Any = module
    for depth, name in enumerate(attribute.split(".")):
        try:
            app = getattr(app, name)
        except AttributeError:
            owner = ".".join(attribute.split(".")[:depth])
            where = f'"{owner}" in module "{module_name}"' if owner else f'module "{module_name}"'
            raise fail(
                "attribute-missing",
                f'{where} has no attribute "{name}".{_did_you_mean(name, dir(app))} '
                "Put the name of your app object after the colon.",
            ) from None

    if factory:
        if not callable(app):
            raise fail(
                "factory-error",
                f'--factory was given, but "{attribute}" is {_a(type(app).__name__)}, '
                "not a function that returns the app.",
            )
        try:
            app = app()
        except Exception as exc:
            raise fail(
                "factory-error",
                f'calling the factory "{attribute}()" raised {_describe(exc)}{_where(exc)}.',
            ) from None

    what = _not_an_app(app)
    if what:
        built = f'calling "{attribute}()" returned' if factory else f'"{attribute}" is'
        raise fail(
            "not-an-app",
            f"{built} {what}, not an ASGI application (an async callable taking scope, "
            "receive and send)." + ("" if factory else " If it builds the app, pass --factory."),
        )
    return app  # type: ignore[no-any-return]  # getattr() chains give Any; checked callable above


def _not_an_app(app: Any) -> str:
    """Return what *app* is when it surely is not an ASGI 3 app, else ``""``.

    Only the sure cases: something not callable, or a plain (not ``async``)
    function. The latter matters because uvicorn, given a plain function, calls
    it with no arguments to see whether it is a factory.
    """
    if not callable(app):
        return _a(type(app).__name__)
    if (inspect.isfunction(app) or inspect.ismethod(app)) and not inspect.iscoroutinefunction(app):
        return f"a plain function ({app.__name__})"
    return ""


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def _raised_while_importing(module_name: str, exc: BaseException) -> str:
    return (
        f'importing module "{module_name}" raised {_describe(exc)}{_where(exc)}. '
        f'Run python -c "import {module_name}" for the full traceback.'
    )


def _describe(exc: BaseException) -> str:
    text = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _where(exc: BaseException) -> str:
    """Return `` (at file, line N)`` for the line that raised *exc*, if we know it."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        filename, lineno = exc.filename, exc.lineno
    else:
        # The innermost frame that is not importlib's own machinery.
        frames = [
            frame
            for frame in traceback.extract_tb(exc.__traceback__)
            if not frame.filename.startswith("<frozen ")
            and not frame.filename.endswith(os.path.join("lilya", "_importer.py"))
        ]
        if not frames or frames[-1].lineno is None:
            return ""
        filename, lineno = frames[-1].filename, frames[-1].lineno
    return f" (at {_relative(filename)}, line {lineno})"


def _relative(filename: str) -> str:
    relative = os.path.relpath(filename)
    return filename if relative.startswith(os.pardir) else relative


def _did_you_mean(name: str, candidates: list[str]) -> str:
    public = [c for c in candidates if not c.startswith("_")]
    matches = difflib.get_close_matches(name, public, n=1)
    return f' Did you mean "{matches[0]}"?' if matches else ""


def add_app_dir(app_dir: str) -> None:
    """Put *app_dir* first on ``sys.path`` so its modules import (as ``python -m`` would)."""
    path = os.path.abspath(app_dir)
    if path in sys.path:
        sys.path.remove(path)
    sys.path.insert(0, path)
