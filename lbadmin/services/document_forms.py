"""Checking an imported cluster configuration document through the WebUI's own forms: turn
each object into what the form would have posted, and the form's errors into problems that
say where in the document they are."""

from typing import Any


def form_data(item: Any, allowed: set[str], where: str, problems: list[str]) -> dict[str, Any]:
    """Turn a document object into what the WebUI's form would have posted."""
    if not isinstance(item, dict):
        problems.append(f"{where}: not an object")
        return {}
    unknown = set(item) - allowed
    if unknown:
        problems.append(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    data: dict[str, Any] = {}
    for key, value in item.items():
        if key not in allowed or key == "real_servers":
            continue
        # connect_timeout_ms -> the form's connect_timeout, which takes plain milliseconds
        name = key.removesuffix("_ms").removesuffix("_s")
        if key == "persistence_timeout_s" and isinstance(value, int):
            value = f"{value}s"
        if isinstance(value, bool):
            data[name] = "on" if value else ""
        elif value is None:
            data[name] = ""
        elif isinstance(value, list):
            data[name] = ",".join(str(part) for part in value)
        elif isinstance(value, int | str):
            data[name] = str(value)
        else:
            problems.append(f"{where}.{key}: unsupported value")
    return data


def label_of(item: Any) -> str:
    return str(item.get("label", "?")) if isinstance(item, dict) else "?"


def form_problems(where: str, form: Any) -> list[str]:
    return [
        f"{where}.{field}: {message}"
        for field, messages in form.errors.items()
        for message in messages
    ]
