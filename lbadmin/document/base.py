"""What every model of the document shares: strict, closed and frozen; and how a rule that
relates several objects reports each problem at its own JSON path, all at once, even when other
objects of the document have problems of their own.

A container's rules (labels unique, references, addresses) are one function ``check(rules,
model, data)``. When the container is valid it gets the model; when something inside it is not,
pydantic has no model to give, so the rules get None and the raw data, and run over the items
that are valid on their own (``valid_items``): their problems are reported with the others', and
a rule that needs every item of a list (a reference to a label) waits until they all are, so it
never reports what is not wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, NoReturn, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

Loc = tuple[str | int, ...]
Item = TypeVar("Item")
Model = TypeVar("Model", bound=BaseModel)
Indexed = list[tuple[int, Item]]  # items with their index in the document's list


class DocumentModel(BaseModel):
    """Strict: JSON types are taken as they are (0 is not false, "81" is not a port); closed:
    an unknown key is a problem, not ignored; frozen: a validated document is a value.

    A model with rules over its fields or its items defines ``_check(rules, model, data)``
    (see the module docstring); its problems join pydantic's own."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    @model_validator(mode="wrap")
    @classmethod
    def _whole_object_rules(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        check: Check | None = getattr(cls, "_check", None)
        if check is None:
            return handler(data)
        return checked(cls.__name__, data, handler, check)


class Rules:
    """The problems whole-object rules find, each at its own path below the object."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.errors: list[InitErrorDetails] = []

    def add(self, loc: Loc, message: str, value: object = None) -> None:
        # The message goes in the context, not the template: labels and manual lines may hold
        # braces, which a template would try to fill in.
        error = PydanticCustomError("rule", "{message}", {"message": message})
        self.errors.append({"type": error, "loc": loc, "input": value})

    def raise_any(self) -> None:
        """One ValidationError for them all, which pydantic merges into the document's."""
        if self.errors:
            raise ValidationError.from_exception_data(self.title, self.errors)


Check = Callable[[Rules, Any, Any], None]  # (rules, the model or None, the raw data)


def checked(title: str, data: Any, handler: Callable[[Any], Model], check: Check) -> Model:
    """The body of a container's wrap validator: validate, then run ``check`` on the model,
    or (something inside was invalid) on the raw data, adding to pydantic's own problems."""
    rules = Rules(title)
    try:
        model = handler(data)
    except ValidationError as error:
        check(rules, None, data)
        _raise_with(error, rules)
    check(rules, model, data)
    rules.raise_any()
    return model


def _raise_with(error: ValidationError, rules: Rules) -> NoReturn:
    if not rules.errors:
        raise error
    raise ValidationError.from_exception_data(
        error.title, [*map(_again, error.errors()), *rules.errors]
    )


def _again(detail: ErrorDetails) -> InitErrorDetails:
    """A reported error as one to raise again: same type, place, input, context and message."""
    context = {**(detail.get("ctx") or {}), "message": detail["msg"]}
    error = PydanticCustomError(detail["type"], "{message}", context)
    return {"type": error, "loc": detail["loc"], "input": detail["input"]}


def valid_items(data: Any, path: Loc, model: type[Model]) -> tuple[Indexed[Model], bool]:
    """The items of the list at ``path`` in raw ``data`` that are valid on their own, with
    their indexes; and whether that is all of them (a list that is not one has none)."""
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    if not isinstance(data, list):
        return [], False
    found: Indexed[Model] = []
    for index, raw in enumerate(data):
        try:
            found.append((index, model.model_validate(raw)))
        except ValidationError:
            continue
    return found, len(found) == len(data)


def indexed(items: Sequence[Item]) -> Indexed[Item]:
    return list(enumerate(items))


def items_of(
    model: BaseModel | None, data: Any, path: Loc, item: type[Model]
) -> tuple[Indexed[Model], bool]:
    """The items of the list at ``path``: the model's when it is valid, else those of the raw
    data that are valid on their own; and whether that is all of them."""
    if model is None:
        return valid_items(data, path, item)
    for key in path:
        model = getattr(model, str(key))
    return indexed(model), True  # type: ignore[arg-type]


def report_repeated_labels(rules: Rules, where: Loc, items: Indexed[Any]) -> None:
    """Each item whose label an earlier item of the list has: labels are unique in it."""
    item_at = dict(items)
    for index, first in repeats(items, lambda item: item.label):
        rules.add(
            (*where, index, "label"),
            f"“{item_at[index].label}” is already the label of {where[-1]}[{first}]",
        )


def repeats(items: Indexed[Item], key: Callable[[Item], Hashable]) -> Iterable[tuple[int, int]]:
    """(index, index of the first item with the same key) for each item whose key came before."""
    first: dict[Hashable, int] = {}
    for index, item in items:
        seen = first.setdefault(key(item), index)
        if seen != index:
            yield index, seen


def shown(value: object) -> str:
    """A value as a message may quote it: JSON text (so "81" reads as text, 81 as a number),
    printable and short; a list or an object is named, not printed."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):  # not JSON, or an integer too long to print
        text = type(value).__name__
    text = "".join(char if char.isprintable() else "?" for char in text)
    return text if len(text) <= 40 else text[:37] + "..."
