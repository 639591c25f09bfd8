"""The decode budget's command-line flags (codec/budget.py), shared by ``decode``, ``eval`` and ``info``."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def flag(name: str) -> str:
    """The command-line flag of an option: ``precise_bits`` -> ``--precise-bits``."""
    return "--" + name.replace("_", "-")


def add_budget_options(p: argparse.ArgumentParser) -> None:
    """One flag per field of the decode budget (codec/budget.py), e.g. ``--max-work 2e11``."""
    from dataclasses import fields

    from codec.budget import DEFAULT_BUDGET, DecodeBudget

    g = p.add_argument_group("decode budget (docs/DECODER.md); raise a limit to decode more")
    for f in fields(DecodeBudget):
        g.add_argument(
            flag(f.name),
            type=_limit,
            default=None,
            metavar="N",
            help=f"{f.metadata['help']} (default {getattr(DEFAULT_BUDGET, f.name):.3g})",
        )


def _limit(text: str) -> int:
    from codec.budget import parse_limit

    try:
        return parse_limit(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def budget_from_args(args: argparse.Namespace) -> Any:
    from codec.budget import BUDGET_FIELDS, DEFAULT_BUDGET

    return DEFAULT_BUDGET.with_limits({name: getattr(args, name, None) for name in BUDGET_FIELDS})


@contextmanager
def budget_hint() -> Iterator[None]:
    """A BudgetError says which flag raises the limit it hit."""
    from codec.budget import BudgetError

    try:
        yield
    except BudgetError as exc:
        raise BudgetError(f"{exc}; {flag(exc.limit)} raises it", exc.limit) from None
