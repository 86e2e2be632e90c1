"""Saving a validated form through its service, when another change may have been saved at
the same moment."""

from collections.abc import Callable
from typing import TypeVar

from django import forms

from lbadmin.services.ports import AddressTaken

T = TypeVar("T")


def save_or_report(form: forms.BaseForm, write: Callable[[], T]) -> T | None:
    """The write's result; None, with the reason on the form, when another change saved
    first took the address the form had found free (lbadmin.services.ports.AddressTaken)."""
    try:
        return write()
    except AddressTaken as taken:
        for problem in taken.problems:
            form.add_error(None, problem)
        return None
