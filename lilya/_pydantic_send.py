"""What ``send_message()`` does with a pydantic model: check it, then encode it, cheaply.

The guarantee (issue 14) is that an object that does not fit the declared
``sends=`` type is a :class:`~lilya.typed.MessageTypeError` and never a frame.
pydantic's own serializer checks each field's Python type while it writes the
JSON (with ``warnings="error"`` a mismatch raises), which covers a model
mutated to a wrong type and a ``model_construct()`` with a wrong value. It does
not see everything, so this module adds, per declared model, decided once
when the codec is built:

* the exact class (a dict lookup), or for a subclass the declared class it
  derives from, whose serializer is then used: a subclass is sent as the
  declared model (its extra fields dropped, its overridden fields checked
  against the declared types);
* the tag: ``type`` must still be the member's tag (the serializer writes any
  ``str`` for a ``Literal``);
* every field present (``model_construct()`` leaves out the ones it is not
  given, and the serializer silently skips them);
* where the serializer's type check is not the whole of the declared type
  (constraints such as ``Field(gt=0)``, ``Literal`` fields, nested models,
  validators, custom serializers, model config; nested models are walked
  instead when they have only plain fields), the encoded frame is
  validated by the model's validator, the way msgspec types are checked; a
  model whose only such field is a ``float`` is validated only when the frame
  holds a ``null`` (pydantic writes NaN and infinities as ``null``, which the
  declared ``float`` refuses).

A model of plain fields skips all that when it can: its msgspec *mirror*
(see "the mirror" below, filled from the model's ``__dict__`` where no alias
renames a field: "the dict form") checks and encodes it in C, and only what
the mirror refuses takes the path above, which decides and words the error.

Why a module of its own: passing ``warnings="error"`` costs pydantic-core as
much again as the encoding itself (its argument parser tries ``bool`` first,
and a failed conversion is expensive), while the default ``warnings=True``
costs nothing extra. So this module installs, at import, a warnings filter
that turns ``UserWarning`` into an error *for warnings raised from this
module's frames only* (pydantic attributes its serializer warning to the frame
that called it), and calls the serializer with the default. That filter only
decides if no filter before it in ``warnings.filters`` can catch such a
warning first (one added later by ``-W``, pytest, ``catch_warnings`` or a
library goes before it): whenever the list changes, the filters before it are
looked at once, and if one of them could take the warning, the call passes
``warnings="error"`` instead. :func:`fast_path_works` proves the filter path
when the first codec is built, so a pydantic release that warns differently
falls back to the slow path rather than to sending the frame.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import msgspec
import pydantic
import pydantic_core

from lilya._struct_mirror import FINITE

__all__ = ["Encoder", "MemberPlan", "fast_path_works", "install_filter"]


def install_filter() -> None:
    """Put this module's filter first in ``warnings.filters`` (done at import)."""
    warnings.filterwarnings("error", category=UserWarning, module=r"lilya\._pydantic_send\Z")


install_filter()
_FILTER = warnings.filters[0]

#: When the encoded frame is validated again: never (the serializer's check is
#: the whole type), only when it holds ``null`` (floats: NaN), or always.
Revalidate = Literal[0, 1, 2]
_NEVER: Revalidate = 0
_ON_NULL: Revalidate = 1
_ALWAYS: Revalidate = 2

_PLAIN_KEYS = frozenset({"type", "metadata", "ref"})
_CHECKED_BY_TYPE = frozenset({"str", "int", "bool", "none", "any"})
#: What in a core schema's text may make ``by_alias=True`` change the frame: an
#: alias, or a value whose serializer is only known when it is sent (``Any``,
#: which may hold an aliased model; a function serializer calling a handler).
_ALIAS_HINTS = ("alias", "'any'", "'function-")


class MemberPlan:
    """How one declared model is checked and encoded (built once per codec)."""

    __slots__ = (
        "aliased",
        "classes",
        "cls",
        "count",
        "floats",
        "mirror",
        "mirror_flat",
        "mirror_reads_dict",
        "names",
        "nested",
        "other_keys",
        "revalidate",
        "tag",
        "to_json",
        "validate_json",
    )

    def __init__(self, cls: Any, tag: str | None) -> None:
        self.cls = cls
        self.tag = tag
        self.to_json: Callable[..., bytes] = cls.__pydantic_serializer__.to_json
        self.validate_json: Callable[[bytes], Any] = cls.__pydantic_validator__.validate_json
        self.names = frozenset(cls.model_fields)
        # by_alias=True costs the serializer ~280 instructions a message; a
        # model that names no alias anywhere encodes the same without it.
        schema_text = repr(cls.__pydantic_core_schema__)
        self.aliased = any(hint in schema_text for hint in _ALIAS_HINTS)
        self.count = len(self.names)
        # pydantic refuses to set a name that is not a field (extras live in
        # __pydantic_extra__, private attributes in __pydantic_private__), so
        # an instance __dict__ of the size of the fields holds all of them:
        # a len() instead of a set comparison, ten times cheaper. A
        # cached_property stores its value in __dict__ too; then the names are
        # compared every time.
        self.other_keys = any(
            isinstance(attribute, functools.cached_property)
            for klass in cls.__mro__
            for attribute in vars(klass).values()
        )
        self.floats: tuple[str, ...] = ()
        self.nested: tuple[tuple[str, bool, MemberPlan], ...] = ()
        _building.add(cls)
        try:
            self.revalidate = _model_revalidate(cls.__pydantic_core_schema__, self)
        finally:
            _building.discard(cls)
        #: The model's msgspec mirror (see "The mirror" below), or None where
        #: a mirror could not say exactly what the model declares.
        self.mirror: Any = None
        #: The nested models' classes, checked after the mirror's conversion.
        self.classes: tuple[ClassCheck, ...] = ()
        mirrored = _mirror_model(cls.__pydantic_core_schema__, {}, set())
        if mirrored is not None:
            self.mirror, self.classes = mirrored
        # The mirror reads the model's __dict__ (a dict, looked up by JSON
        # name: ~3,500 instructions fewer on seven fields than getattr through
        # BaseModel's __getattr__ hook) where the JSON names are the fields'.
        self.mirror_reads_dict = self.mirror is not None and not self.aliased
        # Without nested models, the conversion needs no from_attributes=True:
        # the keyword argument alone costs msgspec ~2,100 instructions a call.
        # With them, the mirror is filled from the dict form (below).
        self.mirror_flat = self.mirror_reads_dict and all(
            cls in (list, dict) for _name, _many, cls, _deeper in self.classes
        )


#: The models whose plans are being built: a model met again inside itself
#: (a tree) is validated on the frame rather than walked.
_building: set[Any] = set()


def _model_revalidate(schema: dict[str, Any], plan: MemberPlan) -> Revalidate:
    # A model used in more than one place is a definition, referred to by ref.
    definitions: dict[str, Any] = {}
    if schema.get("type") == "definitions":
        definitions = {entry.get("ref"): entry for entry in schema["definitions"]}
        schema = schema["schema"]
    # The top-level model: plain config, no custom __init__ / post-init, no
    # computed fields; then each field.
    if schema.get("type") != "model" or set(schema) - {
        "type",
        "cls",
        "config",
        "custom_init",
        "metadata",
        "ref",
        "root_model",
        "schema",
    }:
        return _ALWAYS
    if schema.get("custom_init") or schema.get("root_model"):
        return _ALWAYS
    if set(schema.get("config", {})) - {"title"}:
        return _ALWAYS
    fields_schema = schema["schema"]
    if (
        fields_schema.get("type") != "model-fields"
        or fields_schema.get("computed_fields")
        or set(fields_schema)
        - {"type", "fields", "model_name", "computed_fields", "metadata", "ref"}
    ):
        return _ALWAYS
    worst = _NEVER
    for name, field in fields_schema["fields"].items():
        if set(field) - {"type", "schema", "metadata", "serialization_alias", "validation_alias"}:
            return _ALWAYS
        if field.get("serialization_alias") != field.get("validation_alias"):
            return _ALWAYS
        inner = field["schema"]
        if name == "type":
            # The tag is checked by value before encoding.
            if inner.get("type") == "default":
                inner = inner["schema"]
            if inner.get("type") == "literal":
                continue
        if inner.get("type") == "default" and not set(inner) - _PLAIN_KEYS - {"schema", "default"}:
            inner = inner["schema"]
        if inner.get("type") == "float" and not set(inner) - _PLAIN_KEYS:
            # A float of the model itself: checked for NaN and infinities by
            # value, cheaper than searching the frame for null.
            plan.floats += (name,)
            continue
        nested = _nested_plan(inner, definitions)
        if nested is not None:
            plan.nested += ((name, *nested),)
            continue
        worst = max(worst, _value_revalidate(inner))
        if worst == _ALWAYS:
            return _ALWAYS
    return worst


def _nested_plan(
    schema: dict[str, Any], definitions: dict[str, Any]
) -> tuple[bool, MemberPlan] | None:
    # A field holding a model of plain fields, optional or in a list, is
    # checked by walking the instances (every field there, floats JSON can
    # carry): the serializer vouched for their types, not for their presence.
    many = False
    if schema.get("type") == "list" and not set(schema) - _PLAIN_KEYS - {"items_schema"}:
        many, schema = True, schema.get("items_schema", {})
    if schema.get("type") == "nullable" and not set(schema) - _PLAIN_KEYS - {"schema"}:
        schema = schema["schema"]
    if schema.get("type") == "definition-ref":
        schema = definitions.get(schema["schema_ref"], {})
    if schema.get("type") != "model" or schema["cls"] in _building:
        return None
    nested = MemberPlan(schema["cls"], None)
    if nested.revalidate != _NEVER:
        return None
    return many, nested


def _nested_problem(plan: MemberPlan, fields: dict[str, Any], path: str) -> str | None:
    # The loop runs per nested instance (twenty items, twenty times), so what
    # it reads of the plan is read once, before it.
    for name, many, nested in plan.nested:
        item = fields[name]
        cls, count, names, floats = nested.cls, nested.count, nested.names, nested.floats
        by_len = not nested.other_keys
        deeper = nested.nested
        if many and item is None:
            # pydantic's serializer writes None in a list field as null, unwarned.
            return f"field {path}{name} is None, not a list"
        for index, element in enumerate(item if many else (item,)):
            if element is None:  # the serializer refused None where it is not allowed
                continue
            inner = element.__dict__
            if not (by_len and type(element) is cls and len(inner) == count) and not (
                inner.keys() >= names
            ):
                missing = ", ".join(sorted(names - inner.keys()))
                where = f"{path}{name}[{index}]" if many else f"{path}{name}"
                return (
                    f"field(s) {missing} of {where} missing (a model_construct() not given them?)"
                )
            for float_name in floats:
                number = inner[float_name]
                if number - number != 0.0:
                    where = f"{path}{name}[{index}]" if many else f"{path}{name}"
                    return f"field {where}.{float_name} is {number!r}, which JSON cannot carry"
            if deeper:
                where = f"{path}{name}[{index}]." if many else f"{path}{name}."
                problem = _nested_problem(nested, inner, where)
                if problem is not None:
                    return problem
    return None


def _value_revalidate(schema: dict[str, Any]) -> Revalidate:
    kind = schema.get("type")
    if kind in _CHECKED_BY_TYPE or kind == "float":
        if set(schema) - _PLAIN_KEYS:
            return _ALWAYS  # constraints (max_length, gt, strict...) the serializer ignores
        return _ON_NULL if kind == "float" else _NEVER
    if kind in ("nullable", "default"):
        if set(schema) - _PLAIN_KEYS - {"schema", "default", "default_factory"}:
            return _ALWAYS
        return _value_revalidate(schema["schema"])
    if kind == "list":
        if set(schema) - _PLAIN_KEYS - {"items_schema"}:
            return _ALWAYS
        return _value_revalidate(schema.get("items_schema", {"type": "any"}))
    if kind == "dict":
        if set(schema) - _PLAIN_KEYS - {"keys_schema", "values_schema"}:
            return _ALWAYS
        any_schema = {"type": "any"}
        return max(
            _value_revalidate(schema.get("keys_schema", any_schema)),
            _value_revalidate(schema.get("values_schema", any_schema)),
        )
    # Literals, enums, unions, nested models (which model_construct() can
    # leave incomplete), dates, validators, custom serializers...
    return _ALWAYS


# -- the mirror ----------------------------------------------------------------
#
# A model of plain fields (strings, integers, booleans, finite floats, None,
# str literals, lists, dicts with str keys, nested models of the same kind,
# optional or in a list) gets a mirror: a msgspec Struct of the same fields in
# the same order, under the same JSON names, every field required. Per
# message, msgspec.convert(model, mirror, from_attributes=True) reads the
# model's attributes into the mirror, checking each value against the declared
# type in C (a wrong type, a missing field, a wrong tag, NaN and infinities all
# fail there); the nested models' classes are then compared (convert takes any
# object with the right attributes, or a dict); and the mirror is encoded by
# msgspec. That is the check and the encoding pydantic's path does, for about
# half the instructions on a nested message, and a third less on a flat one.
#
# The mirror only ever says yes to what pydantic's path would send: anything
# it refuses goes down pydantic's path, which says what is wrong. What the
# mirror's conversion refuses stays refused even where pydantic's path would
# send it (None in a str field goes out as null there); what only the class
# check after it refuses (a subclass in a nested field, say) is pydantic's
# path's to send. The frame is JSON-equivalent to pydantic's: same keys in
# the same order, the same values (msgspec and pydantic both write a float's
# shortest round-trip digits; msgspec spells 1e20 where pydantic spells 1e+20).

#: (field name, a list of models?, the model's class, the checks inside it).
ClassCheck = tuple[str, bool, Any, tuple[Any, ...]]

_MIRROR_SCALARS: dict[str, Any] = {"str": str, "int": int, "bool": bool, "none": None}
_FIELD_KEYS = frozenset({"type", "schema", "metadata", "serialization_alias", "validation_alias"})
_MODEL_KEYS = frozenset(
    {"type", "cls", "config", "custom_init", "metadata", "ref", "root_model", "schema"}
)
_FIELDS_KEYS = frozenset({"type", "fields", "model_name", "computed_fields", "metadata", "ref"})
_convert = msgspec.convert
_mirror_encode = msgspec.json.Encoder().encode


def _mirror_model(
    schema: dict[str, Any], definitions: dict[str, Any], seen: set[Any]
) -> tuple[Any, tuple[ClassCheck, ...]] | None:
    if schema.get("type") == "definitions":
        definitions = {
            **definitions,
            **{entry.get("ref"): entry for entry in schema["definitions"]},
        }
        schema = schema["schema"]
    if schema.get("type") == "definition-ref":
        schema = definitions.get(schema["schema_ref"], {})
    if (
        schema.get("type") != "model"
        or set(schema) - _MODEL_KEYS
        or schema.get("custom_init")
        or schema.get("root_model")
        or set(schema.get("config", {})) - {"title"}
        or schema["cls"] in seen
    ):
        return None  # custom __init__, root model, model config, a tree...
    fields_schema = schema["schema"]
    if (
        fields_schema.get("type") != "model-fields"
        or set(fields_schema) - _FIELDS_KEYS
        or fields_schema.get("computed_fields")
    ):
        return None  # computed fields, extras...
    seen = seen | {schema["cls"]}
    fields: list[tuple[str, Any]] = []
    rename: dict[str, str] = {}
    checks: list[ClassCheck] = []
    for name, field in fields_schema["fields"].items():
        alias = field.get("serialization_alias")
        if set(field) - _FIELD_KEYS or alias != field.get("validation_alias"):
            return None  # excluded fields, alias paths...
        if alias is not None:
            if not isinstance(alias, str):  # pragma: no cover - pydantic names them by str
                return None
            rename[name] = alias
        inner = _skip_default(field["schema"])
        if inner is None:
            return None
        nested = _mirror_nested(inner, definitions, seen)
        if nested is not None:
            annotation, check = nested
            checks.append((name, *check))
        else:
            annotation = _mirror_value(inner)
            if annotation is _NO_MIRROR:
                return None
            container = _container(inner)
            if container is not None:
                # msgspec takes a tuple for a list, any mapping for a dict.
                checks.append((name, False, container, ()))
        fields.append((name, annotation))
    mirror = msgspec.defstruct(
        f"{schema['cls'].__name__}Mirror", fields, rename=rename or None, gc=False
    )
    return mirror, tuple(checks)


def _skip_default(schema: dict[str, Any]) -> dict[str, Any] | None:
    # The mirror's fields are all required: a default is pydantic's to fill in.
    if schema.get("type") != "default":
        return schema
    if set(schema) - _PLAIN_KEYS - {"schema", "default", "default_factory"}:
        return None  # validate_default and the like
    inner: dict[str, Any] = schema["schema"]
    return inner


def _mirror_nested(
    schema: dict[str, Any], definitions: dict[str, Any], seen: set[Any]
) -> tuple[Any, tuple[bool, Any, tuple[ClassCheck, ...]]] | None:
    # A nested model, optional or in a list (the shapes whose classes the
    # check after the conversion knows how to compare).
    many = optional = False
    if schema.get("type") == "list" and not set(schema) - _PLAIN_KEYS - {"items_schema"}:
        many, schema = True, schema.get("items_schema", {})
    elif schema.get("type") == "nullable" and not set(schema) - _PLAIN_KEYS - {"schema"}:
        optional, schema = True, schema["schema"]
    if schema.get("type") == "definition-ref":
        schema = definitions.get(schema["schema_ref"], {})
    if schema.get("type") != "model":
        return None
    mirrored = _mirror_model(schema, definitions, seen)
    if mirrored is None:
        return None
    mirror, checks = mirrored
    annotation: Any = mirror
    if many:
        annotation = list[mirror]  # type: ignore[valid-type]  # a class built at run time
    elif optional:
        annotation = mirror | None
    return annotation, (many, schema["cls"], checks)


class _NoMirror:
    """What :func:`_mirror_value` returns for a schema a mirror cannot state exactly."""


_NO_MIRROR: Any = _NoMirror()


def _container(schema: dict[str, Any]) -> type | None:
    if schema.get("type") == "nullable":
        schema = schema["schema"]
    return {"list": list, "dict": dict}.get(schema.get("type", ""))


def _mirror_value(schema: dict[str, Any], *, outer: bool = True) -> Any:
    kind = schema.get("type")
    bare = not set(schema) - _PLAIN_KEYS
    if kind in _MIRROR_SCALARS and bare:
        return _MIRROR_SCALARS[kind]
    if kind == "float" and bare:
        return FINITE
    if kind == "literal" and not set(schema) - _PLAIN_KEYS - {"expected"}:
        expected = schema["expected"]
        if all(type(value) is str for value in expected):
            return Literal[tuple(expected)]
        # int and bool literals: msgspec and pydantic tell 1 from True differently.
        return _NO_MIRROR
    if kind == "nullable" and not set(schema) - _PLAIN_KEYS - {"schema"}:
        inner = _mirror_value(schema["schema"], outer=outer)
        return _NO_MIRROR if inner is _NO_MIRROR else _or_none(inner)
    if not outer:
        pass  # containers in containers: their type is not checked after the conversion
    elif (
        kind == "list"
        and not set(schema) - _PLAIN_KEYS - {"items_schema"}
        and "items_schema" in schema
    ):
        inner = _mirror_value(schema["items_schema"], outer=False)
        return _NO_MIRROR if inner is _NO_MIRROR else list[inner]  # type: ignore[valid-type]  # built at run time
    elif (
        kind == "dict"
        and not set(schema) - _PLAIN_KEYS - {"keys_schema", "values_schema"}
        and schema.get("keys_schema") == {"type": "str"}
        and "values_schema" in schema
    ):
        inner = _mirror_value(schema["values_schema"], outer=False)
        return _NO_MIRROR if inner is _NO_MIRROR else dict[str, inner]  # type: ignore[valid-type]  # built at run time
    # Any, enums, unions, dates, constraints, validators, custom serializers...
    return _NO_MIRROR


def _or_none(annotation: Any) -> Any:
    # None | None is not a type; Optional of None is None.
    return None if annotation is None else annotation | None


def _classes_fit(fields: dict[str, Any], checks: tuple[ClassCheck, ...]) -> bool:
    # The mirror checked every value; this checks that each nested model is an
    # instance of exactly its declared class (a subclass, another model with
    # the same fields or a dict are pydantic's path's to judge).
    for name, many, cls, deeper in checks:
        item = fields[name]
        if many:
            if type(item) is not list:
                return False
            for element in item:
                if type(element) is not cls or (
                    deeper and not _classes_fit(element.__dict__, deeper)
                ):
                    return False
        elif item is not None and (
            type(item) is not cls or (deeper and not _classes_fit(item.__dict__, deeper))
        ):
            return False
    return True


# -- the dict form ---------------------------------------------------------------
#
# Where the mirror's JSON names are the fields' (no alias), the mirror is
# filled from the model's __dict__ rather than from its attributes: each
# nested model's __dict__ put in its place (its class and the containers'
# types compared on the way: the class check above, done while gathering),
# then one msgspec.convert() without from_attributes=True. Both ways go through
# BaseModel's __getattr__ hook, ~460 instructions a lookup: once an item for
# its __dict__ here, once a field there (three on the benchmark's items); and
# the keyword argument alone costs msgspec ~2,100 a call. The mirror so built
# holds the very values the one built from the attributes would, so the frame
# is the same, byte for byte; where a class does not fit, the conversion from
# the attributes runs as before, and decides.
#
# Writing the dict form with orjson instead of encoding the mirror was tried
# and dropped: cheaper still (0.98x send_json on the nested benchmark against
# ~1.1x), but orjson writes an enum member by its .value, where the mirror and
# pydantic write the str or int it is; an enum whose value is not its content
# (a custom __new__) assigned to a str or Literal field would go out as a
# value the declared type does not promise, and no check for it costs less
# than the saving.


def _dict_form(fields: dict[str, Any], checks: tuple[ClassCheck, ...]) -> dict[str, Any] | None:
    # The nested models' __dict__ in their place, or None where a class or a
    # container is not exactly the declared one.
    if type(fields) is not dict:
        # A __dict__ swapped for a dict subclass behind pydantic's back: its
        # copy() would call its own keys() and __getitem__, which may say
        # something else than its attributes; the attributes decide.
        return None
    out = None
    for name, many, cls, deeper in checks:
        item = fields.get(name)  # missing: None, refused here or by the conversion
        if cls is list or cls is dict:
            if item is not None and type(item) is not cls:
                return None
            continue
        if many:
            if type(item) is not list:
                return None
            if deeper:
                dicts = []
                for element in item:
                    inner = _dict_form(element.__dict__, deeper) if type(element) is cls else None
                    if inner is None:
                        return None
                    dicts.append(inner)
            else:
                dicts = [element.__dict__ for element in item if type(element) is cls]
                if len(dicts) != len(item):
                    return None
            form: Any = dicts
        elif item is None:
            continue
        elif type(item) is not cls:
            return None
        else:
            form = _dict_form(item.__dict__, deeper) if deeper else item.__dict__
            if form is None:
                return None
        if out is None:
            out = fields.copy()
        out[name] = form
    return fields if out is None else out


@functools.cache
def fast_path_works() -> bool:
    """Return whether a field of the wrong type raises through the filter path.

    Run when the first pydantic codec is built, with only this module's filter and an
    "ignore" for everything else, so nothing but that filter can raise.
    """

    class _Probe(pydantic.BaseModel):
        text: str

    probe = _Probe(text="")
    probe.text = 0  # type: ignore[assignment]  # the wrong type is the point
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        install_filter()
        try:
            _Probe.__pydantic_serializer__.to_json(probe)
        except UserWarning:
            return True
    return False  # pragma: no cover - a pydantic that warns another way


#: The filters list last looked at, its length (-1 for an empty one, looked at
#: again every time, as its first entry cannot be read), its first entry, and
#: whether this module's filter decides there and works (see the module
#: docstring). Module globals rather than one list: each is one LOAD_GLOBAL a
#: message where a list item is three bytecodes, ~350 instructions in all.
_seen_filters: object = None
_seen_len = -1
_seen_first: Any = None
_fast = False
_MODULE = __name__


def _look_at(filters: Sequence[Any]) -> None:
    # Run when warnings.filters is another list, or has another length or first entry.
    global _seen_filters, _seen_len, _seen_first, _fast
    _seen_filters = filters
    _seen_len = len(filters) if filters else -1
    _seen_first = filters[0] if filters else None
    _fast = fast_path_works() and _filter_decides(filters)


def _filter_decides(filters: Sequence[Any]) -> bool:
    for entry in filters:
        if entry == _FILTER:  # equal: install_filter() again builds an equal tuple
            return True
        action, _message, category, module, _lineno = entry
        takes_ours = issubclass(UserWarning, category) and (
            module is None or module.match(_MODULE) is not None
        )
        if takes_ours and action != "error":
            return False
    return False


class Encoder:
    """Check and encode messages of the declared models *members* (a codec's send side).

    Args:
        members: declared model class -> its tag (``None``: an untagged single model).
        refuse: builds the exception raised for a message that does not fit,
            from the message and what is wrong with it.
    """

    __slots__ = ("plans", "refuse")

    def __init__(
        self, members: dict[Any, str | None], refuse: Callable[[Any, str], Exception]
    ) -> None:
        self.plans = {cls: MemberPlan(cls, tag) for cls, tag in members.items()}
        self.refuse = refuse
        fast_path_works()  # proved once, when the first codec is built

    def encode(self, value: Any) -> bytes:
        """Return *value* (an instance of a declared model) as JSON, checked.

        Raises:
            Exception: ``refuse(value, detail)``: *value* is not a declared
                model, or does not fit it; nothing is encoded.
        """
        plan = self.plans.get(type(value))
        doubt = None
        if plan is not None and plan.mirror is not None:
            gathered = False
            try:
                if plan.mirror_flat:
                    mirrored = _convert(value.__dict__, plan.mirror)
                else:
                    form = (
                        _dict_form(value.__dict__, plan.classes) if plan.mirror_reads_dict else None
                    )
                    if form is not None:
                        mirrored = _convert(form, plan.mirror)
                        gathered = True
                    else:
                        mirrored = _convert(
                            value.__dict__ if plan.mirror_reads_dict else value,
                            plan.mirror,
                            from_attributes=True,
                        )
            except msgspec.ValidationError as exc:
                # pydantic's path says what is wrong; where it would send the
                # model anyway, the mirror's refusal stands: its serializer
                # writes None in a str or int field as null, True in an int
                # field as 1, with no warning, frames the type does not promise.
                doubt = str(exc)
            else:
                if gathered or not plan.classes or _classes_fit(value.__dict__, plan.classes):
                    try:
                        return _mirror_encode(mirrored)
                    except (TypeError, ValueError):
                        pass  # a str subclass msgspec cannot encode, a lone surrogate
        exact = plan is not None
        if plan is None:
            plan = _subclass_plan(self.plans, value)
            if plan is None:
                raise self.refuse(value, "not one of the declared models")
        fields = value.__dict__
        if plan.tag is not None and fields.get("type") != plan.tag:
            raise self.refuse(
                value, f"field type is {fields.get('type')!r}, not the tag {plan.tag!r}"
            )
        if (
            not exact or plan.other_keys or len(fields) != plan.count
        ) and not fields.keys() >= plan.names:
            missing = ", ".join(sorted(plan.names - fields.keys()))
            raise self.refuse(
                value, f"field(s) {missing} missing (a model_construct() not given them?)"
            )
        filters = warnings.filters
        if (
            filters is not _seen_filters
            or len(filters) != _seen_len
            or filters[0] is not _seen_first
        ):
            _look_at(filters)
        try:
            if _fast:
                data = plan.to_json(value, by_alias=True) if plan.aliased else plan.to_json(value)
            else:
                data = plan.to_json(value, by_alias=True, warnings="error")
        except (UserWarning, pydantic_core.PydanticSerializationError) as exc:
            raise self.refuse(value, _serializer_detail(str(exc))) from None
        for name in plan.floats:
            number = fields[name]
            if number - number != 0.0:  # NaN or an infinity: JSON has neither
                raise self.refuse(
                    value,
                    f"field {name} is {number!r}, which JSON cannot carry (pydantic writes null)",
                )
        if plan.nested:
            problem = _nested_problem(plan, fields, "")
            if problem is not None:
                raise self.refuse(value, problem)
        # data.find(), not `in`: bytes.__contains__ first tries the needle as
        # an int and raises (and formats) a TypeError inside, ~2k instructions.
        if plan.revalidate and (plan.revalidate == _ALWAYS or data.find(b"null") >= 0):
            try:
                plan.validate_json(data)
            except pydantic.ValidationError as exc:
                error = exc.errors(include_url=False)[0]
                path = ".".join(str(part) for part in error.get("loc", ()))
                raise self.refuse(value, f"field {path or '(the model)'}: {error['msg']}") from None
        if doubt is not None:
            raise self.refuse(value, doubt)
        return data


def _subclass_plan(plans: dict[Any, MemberPlan], value: Any) -> MemberPlan | None:
    # A subclass is sent as the declared model it derives from.
    for cls in type(value).__mro__:
        plan = plans.get(cls)
        if plan is not None:
            return plan
    return None


def _serializer_detail(text: str) -> str:
    # "Pydantic serializer warnings:\n  PydanticSerializationUnexpectedValue(Expected
    # `str` - serialized value may not be as expected [field_name='text',
    # input_value=5, input_type=int])": the first problem, as one line. Other
    # serializer errors ("Unable to serialize unknown type") are one line.
    lines = text.strip().splitlines()
    first = lines[1].strip() if len(lines) > 1 else text.strip()
    return first.removeprefix("PydanticSerializationUnexpectedValue(").removesuffix(")")
