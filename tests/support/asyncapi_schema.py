"""The official AsyncAPI 3.0 JSON Schema, from the npm package ``@asyncapi/specs``, offline.

``.ci/run`` installs the package into ``.ci/npm`` (``npm install --prefix .ci/npm
@asyncapi/specs@6``). Its ``schemas/3.0.0.json`` refers to its parts by
``$id`` (``http://asyncapi.com/definitions/3.0.0/...``); the package ships each
part under ``definitions/``, so every ``$ref`` resolves from those files and
nothing is fetched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs; the tests make one call
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

__all__ = ["SPECS", "validate_asyncapi"]

SPECS = Path(
    os.environ.get(
        "LILYA_ASYNCAPI_SPECS",
        Path(__file__).resolve().parents[2]
        / ".ci"
        / "npm"
        / "node_modules"
        / "@asyncapi"
        / "specs",
    )
)


def _registry() -> tuple[dict[str, Any], Registry[Any]]:
    root = SPECS / "schemas" / "3.0.0.json"
    if not root.is_file():
        if os.environ.get("CI"):
            raise RuntimeError(f"{root} is missing: .ci/run installs @asyncapi/specs there.")
        pytest.skip(f"{root} is missing: npm install --prefix .ci/npm @asyncapi/specs@6")
    schema = json.loads(root.read_text(encoding="utf-8"))
    resources = []
    for path in sorted((SPECS / "definitions").rglob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(contents, dict) and "$id" in contents:
            resources.append((contents["$id"], Resource.from_contents(contents, DRAFT7)))
    return schema, Registry().with_resources(resources)


def validate_asyncapi(document: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless *document* is valid AsyncAPI 3.0.0."""
    schema, registry = _registry()
    validator = jsonschema.Draft7Validator(schema, registry=registry)
    errors = sorted(validator.iter_errors(document), key=lambda error: list(error.path))
    if errors:
        raise errors[0]
