"""Walk an ONNX graph and turn it into a chain of DuckDB SQL CTEs.

A tensor is either a constant (a numpy array, from an initializer or folded
from constants) or symbolic: a [N, k] batch whose k columns are SQL
expressions, one row per customer. Elementwise operators build bigger
expressions. An expression that its consumers would copy more than once (a
MatMul input, or a tensor with several consumers) first becomes a column of
a new CTE, so the SQL text grows linearly with the graph, not exponentially. Each CTE selects ``*`` from the one
before it, so every earlier column stays in scope, and DuckDB drops the
unused ones when it plans the query.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from duckmkt.errors import ModelError
from duckmkt.i18n import _


@dataclass(frozen=True)
class Symbolic:
    """A [N, k] batch whose column j is the SQL expression ``columns[j]``.

    ``is_bool`` marks a boolean tensor (the result of IsNaN, Not, ...).
    ``simple`` is True when every expression is a bare column name.
    """

    columns: tuple[str, ...]
    is_bool: bool = False
    simple: bool = False

    @property
    def width(self) -> int:
        return len(self.columns)


Tensor = Symbolic | np.ndarray


@dataclass
class Cte:
    """One step of the generated query: ``name as (select <keep>, <columns> from <source>)``."""

    name: str
    source: str
    columns: list[tuple[str, str]] = field(default_factory=list)
    # Columns carried over from the source: all of them, except in the first step.
    keep: str = "*"

    def sql(self) -> str:
        selected = ",\n        ".join([self.keep, *(f"{expression} as {alias}" for alias, expression in self.columns)])
        return f"{self.name} as (\n    select\n        {selected},\n    from {self.source}\n)"


def format_number(value: float) -> str:
    """Return a DOUBLE literal that parses back to exactly ``value``.

    Scientific notation makes DuckDB read the literal as DOUBLE, where
    ``0.5`` would be a DECIMAL.
    """
    value = float(value)
    if np.isnan(value):
        return "'nan'::double"
    if np.isinf(value):
        return "'inf'::double" if value > 0 else "'-inf'::double"
    return np.format_float_scientific(value, unique=True, trim="-", exp_digits=1)


def sanitize(name: str) -> str:
    """Return ``name`` as a lowercase SQL identifier of letters, digits and underscores."""
    cleaned = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return cleaned if cleaned and not cleaned[0].isdigit() else f"t_{cleaned}"


class GraphTranslator:
    """Translate one ONNX graph into CTEs; ``translate`` returns the output expressions.

    ``operators`` maps an ONNX op_type to a function ``(translator, node,
    inputs) -> list of output tensors``.
    """

    def __init__(self, model: onnx.ModelProto, operators: dict, *, source: str):
        self.graph = model.graph
        self.operators = operators
        self.ctes: list[Cte] = []
        self._source = source
        self._names: set[str] = set()
        self._counter = 0
        self._consumers = Counter(name for node in self.graph.node for name in node.input if name)
        self._prefix = _common_prefix([node.name for node in self.graph.node])

    @property
    def last_source(self) -> str:
        """Return the name of the newest CTE, or the input relation when there is none."""
        return self.ctes[-1].name if self.ctes else self._source

    def translate(self, input_tensor: Symbolic) -> dict[str, Symbolic]:
        """Translate every node and return the symbolic tensor of each graph output."""
        self.check_operators()
        values: dict[str, Tensor] = {
            initializer.name: numpy_helper.to_array(initializer) for initializer in self.graph.initializer
        }
        graph_inputs = [value.name for value in self.graph.input if value.name not in values]
        if len(graph_inputs) != 1:
            raise ModelError(
                _("The ONNX model has the inputs {inputs}; the SQL compiler supports one input, the feature matrix.").format(
                    inputs=", ".join(graph_inputs)
                )
            )
        values[graph_inputs[0]] = input_tensor

        for node in self.graph.node:
            inputs = [values[name] if name else None for name in node.input]
            outputs = self.operators[node.op_type](self, node, inputs)
            for name, tensor in zip(node.output, outputs):
                values[name] = self._share(name, tensor)

        results = {}
        for output in self.graph.output:
            tensor = values[output.name]
            if not isinstance(tensor, Symbolic):
                tensor = Symbolic(tuple(format_number(v) for v in np.asarray(tensor, dtype=np.float64).reshape(-1)))
            results[output.name] = tensor
        return results

    def check_operators(self) -> None:
        """Raise ModelError naming every operator of the graph that has no translator."""
        unsupported = sorted({node.op_type for node in self.graph.node} - set(self.operators))
        if unsupported:
            raise ModelError(
                _(
                    "The ONNX model uses the operators {operators}, which the SQL compiler does not translate; "
                    "score it with the score_customer UDF, or add a translator in duckmkt.compile.operators."
                ).format(operators=", ".join(unsupported))
            )

    def materialize(self, tensor: Symbolic, label: str) -> Symbolic:
        """Return ``tensor`` as bare columns of a new CTE (or unchanged when it already is)."""
        if tensor.simple:
            return tensor
        name = self._unique(label)
        cte = Cte(name=name, source=self.last_source)
        columns = []
        for index, expression in enumerate(tensor.columns):
            alias = f"{name}_{index}"
            cte.columns.append((alias, expression))
            columns.append(alias)
        self.ctes.append(cte)
        return Symbolic(tuple(columns), is_bool=tensor.is_bool, simple=True)

    def _share(self, name: str, tensor: Tensor) -> Tensor:
        # A tensor read by several nodes would have its expression copied
        # into each of them, so it becomes a column once instead.
        if isinstance(tensor, Symbolic) and self._consumers[name] > 1:
            return self.materialize(tensor, self.label(name))
        return tensor

    def label(self, tensor_name: str) -> str:
        """Return a CTE name for a tensor: its ONNX name without the model prefix, sanitized."""
        short = tensor_name[len(self._prefix):] if tensor_name.startswith(self._prefix) else tensor_name
        return sanitize(short.split(":")[0])

    def _unique(self, label: str) -> str:
        self._counter += 1
        name = label
        while name in self._names:
            name = f"{label}_{self._counter}"
        self._names.add(name)
        return name


def _common_prefix(names: list[str]) -> str:
    """Return the folder-like prefix shared by every node name ('customer_model_1/'), or ''."""
    scoped = [name for name in names if "/" in name]
    if not scoped or len(scoped) != len(names):
        return ""
    first = scoped[0].split("/")[0] + "/"
    return first if all(name.startswith(first) for name in scoped) else ""
