"""Labels for the SQL constructs a strategy condition may not use, and the valid operator closest to a mistyped one.

The syntax-tree node kinds and operator types are those of DuckDB's
``json_serialize_sql``. Their labels are translated, so an error in Chinese
names the construct in Chinese too.
"""

from __future__ import annotations

from duckmkt.i18n import N_, _

# Node classes and OPERATOR types, lowercased, that the allow-list rejects.
CONSTRUCT_LABELS: dict[str, str] = {
    "subquery": N_("a subquery"),
    "parameter": N_("a parameter ($1 or ?)"),
    "window": N_("a window function (OVER)"),
    "collate": N_("COLLATE"),
    "positional_reference": N_("a positional reference (#1)"),
    "star": N_("* or COLUMNS(*)"),
    "default": N_("DEFAULT"),
    "lambda": N_("a lambda function"),
    "type": N_("a type name"),
    "array_extract": N_("a subscript [i]"),
    "array_slice": N_("a slice [i:j]"),
    "struct_extract": N_("a struct field"),
    "array_constructor": N_("an ARRAY constructor"),
    "operator_try": N_("TRY()"),
    "operator_unpack": N_("UNPACK()"),
}

# Operators a condition may use, in order of preference: a mistyped operator
# made of the same characters as one of these is taken to mean the first such one.
VALID_OPERATORS = (">=", "<=", "<>", "!=", "=", "==", ">", "<", "+", "-", "*", "//", "/", "%")


def construct_label(name: str) -> str:
    """Return the label of a rejected node class or operator type in the active language."""
    key = name.lower()
    if key in CONSTRUCT_LABELS:
        return _(CONSTRUCT_LABELS[key])
    return _("the construct {name}").format(name=key)


def is_operator_symbol(name: str) -> bool:
    """Return whether a FUNCTION node's name is an operator such as ``>=`` or ``||`` rather than a function name."""
    return bool(name) and not any(char.isalnum() or char == "_" for char in name)


def closest_operator(operator: str) -> str | None:
    """Return the valid operator made of the same characters as ``operator``, such as ``>=`` for ``>==`` or ``=>``.

    Returns None when no valid operator uses exactly those characters.
    """
    characters = set(operator)
    return next((valid for valid in VALID_OPERATORS if set(valid) == characters), None)
