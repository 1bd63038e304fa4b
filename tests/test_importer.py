"""Loading an app from "module:attribute": each way it fails says which part and why."""

from __future__ import annotations

import itertools
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lilya._importer import AppImportError, _where, add_app_dir, import_app, split_import_path

_names = itertools.count()

MakeModule = Callable[[str], str]


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeModule]:
    """Write a module with the given source to a fresh directory on sys.path; return its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    made: list[str] = []

    def make(source: str) -> str:
        name = f"lilya_test_app_{os.getpid()}_{next(_names)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        made.append(name)
        return name

    yield make
    for name in made:
        sys.modules.pop(name, None)


APP_SOURCE = """
    async def app(scope, receive, send):
        pass

    class Holder:
        app = app

    def make():
        return app

    def make_nothing():
        return 42

    def make_broken():
        raise ValueError("no config")

    not_callable = 3
    plain = make
"""


def problem_of(import_path: str, **kwargs: bool) -> AppImportError:
    with pytest.raises(AppImportError) as info:
        import_app(import_path, **kwargs)
    return info.value


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("main", "it has no colon"),
        ("main:app:x", "more than one colon"),
        (":app", "module part before the colon is empty"),
        ("main:", "attribute part after the colon is empty"),
        ("1main:app", "'1main' is not a dotted module name"),
        ("main:app-x", "'app-x' is not a dotted attribute name"),
    ],
)
def test_a_path_that_is_not_module_colon_attribute_is_a_syntax_problem(path: str, why: str) -> None:
    with pytest.raises(AppImportError) as info:
        split_import_path(path)
    assert info.value.problem == "syntax"
    assert why in str(info.value)
    assert '"module:attribute", e.g. "examples.chat.app:app"' in str(info.value)


def test_a_good_path_splits_into_module_and_dotted_attribute() -> None:
    assert split_import_path("pkg.mod:holder.app") == ("pkg.mod", "holder.app")


def test_an_async_function_loads(make_module: MakeModule) -> None:
    name = make_module(APP_SOURCE)
    app = import_app(f"{name}:app")
    assert app.__name__ == "app"


def test_a_dotted_attribute_loads(make_module: MakeModule) -> None:
    name = make_module(APP_SOURCE)
    assert import_app(f"{name}:Holder.app").__name__ == "app"


def test_a_factory_is_called_with_factory(make_module: MakeModule) -> None:
    name = make_module(APP_SOURCE)
    assert import_app(f"{name}:make", factory=True).__name__ == "app"


def test_a_missing_module_says_it_was_not_found_and_where_we_looked(tmp_path: Path) -> None:
    error = problem_of("lilya_no_such_module.sub:app")
    assert (error.problem, error.module, error.attribute) == (
        "module-not-found",
        "lilya_no_such_module.sub",
        "app",
    )
    assert "No module named 'lilya_no_such_module'" in str(error)
    assert os.getcwd() in str(error)
    assert "--app-dir" in str(error)
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_a_missing_submodule_of_a_real_package_is_not_found() -> None:
    error = problem_of("lilya.no_such_module:app")
    assert error.problem == "module-not-found"


def test_an_error_raised_while_importing_names_the_error_and_the_line(
    make_module: MakeModule,
) -> None:
    name = make_module("x = 1\ny = 1 / 0\n")
    error = problem_of(f"{name}:app")
    assert error.problem == "import-error"
    assert f'importing module "{name}" raised ZeroDivisionError: division by zero' in str(error)
    assert f"(at {name}.py, line 2)" in str(error)
    assert f'python -c "import {name}"' in str(error)


def test_a_missing_dependency_of_the_module_is_an_import_error_not_a_missing_module(
    make_module: MakeModule,
) -> None:
    name = make_module("import lilya_missing_dependency\n")
    error = problem_of(f"{name}:app")
    assert error.problem == "import-error"
    assert "ModuleNotFoundError: No module named 'lilya_missing_dependency'" in str(error)
    assert f"(at {name}.py, line 1)" in str(error)


def test_a_syntax_error_names_the_file_and_line(make_module: MakeModule) -> None:
    name = make_module("x = 1\ndef f(:\n")
    error = problem_of(f"{name}:app")
    assert error.problem == "import-error"
    assert "raised SyntaxError: invalid syntax" in str(error)
    assert f"(at {name}.py, line 2)" in str(error)


def test_a_missing_attribute_suggests_a_close_name(make_module: MakeModule) -> None:
    name = make_module(APP_SOURCE)
    error = problem_of(f"{name}:ap")
    assert (error.problem, error.attribute) == ("attribute-missing", "ap")
    assert f'module "{name}" has no attribute "ap". Did you mean "app"?' in str(error)


def test_a_missing_dotted_attribute_names_the_object_that_lacks_it(
    make_module: MakeModule,
) -> None:
    name = make_module(APP_SOURCE)
    error = problem_of(f"{name}:Holder.zzz")
    assert f'"Holder" in module "{name}" has no attribute "zzz".' in str(error)
    assert "Did you mean" not in str(error)


def test_something_not_callable_is_not_an_app(make_module: MakeModule) -> None:
    name = make_module(APP_SOURCE)
    error = problem_of(f"{name}:not_callable")
    assert error.problem == "not-an-app"
    assert '"not_callable" is an int, not an ASGI application' in str(error)


def test_a_plain_function_is_not_an_app_and_the_error_mentions_factory(
    make_module: MakeModule,
) -> None:
    name = make_module(APP_SOURCE)
    error = problem_of(f"{name}:plain")
    assert error.problem == "not-an-app"
    assert '"plain" is a plain function (make)' in str(error)
    assert "pass --factory" in str(error)


def test_a_factory_that_raises_says_so(make_module: MakeModule) -> None:
    name = make_module(APP_SOURCE)
    error = problem_of(f"{name}:make_broken", factory=True)
    assert error.problem == "factory-error"
    assert 'calling the factory "make_broken()" raised ValueError: no config' in str(error)
    assert f"(at {name}.py, line" in str(error)


def test_a_factory_that_is_not_callable_says_so(make_module: MakeModule) -> None:
    name = make_module(APP_SOURCE)
    error = problem_of(f"{name}:not_callable", factory=True)
    assert error.problem == "factory-error"
    assert '--factory was given, but "not_callable" is an int' in str(error)


def test_a_factory_that_returns_no_app_says_what_it_returned(make_module: MakeModule) -> None:
    name = make_module(APP_SOURCE)
    error = problem_of(f"{name}:make_nothing", factory=True)
    assert error.problem == "not-an-app"
    assert 'calling "make_nothing()" returned an int, not an ASGI application' in str(error)
    assert "--factory" not in str(error)


def test_an_error_without_a_traceback_has_no_location() -> None:
    assert _where(ValueError("x")) == ""


def test_a_location_outside_the_current_directory_stays_absolute(
    make_module: MakeModule, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = make_module("raise KeyError('k')\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    error = problem_of(f"{name}:app")
    assert f"(at {tmp_path / name}.py, line 1)" in str(error)


def test_add_app_dir_puts_the_directory_first_on_sys_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", ["/a", str(tmp_path), "/b"])
    add_app_dir(str(tmp_path))
    assert sys.path == [str(tmp_path), "/a", "/b"]
    monkeypatch.chdir(tmp_path)
    add_app_dir(".")
    assert sys.path == [str(tmp_path), "/a", "/b"]
    add_app_dir("/c")
    assert sys.path == ["/c", str(tmp_path), "/a", "/b"]
