"""One SQL translator per ONNX operator, in the explicit registry ``OPERATORS``.

A translator takes the GraphTranslator, the node and its input tensors and
returns the node's output tensors. When every input is a constant the
result is computed with numpy (constant folding); otherwise each output
column is a SQL expression over DOUBLE columns.

SQL computes in DOUBLE while ONNX Runtime computes in float32, so results
differ by float32 rounding (about 1e-7 relative per operation). DuckDB
follows IEEE 754 here: ln(0) is -inf, ln of a negative number is NaN, exp
overflows to inf and x / 0 is +-inf.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx

from duckmkt.compile.graph import GraphTranslator, Symbolic, Tensor, format_number
from duckmkt.errors import ModelError
from duckmkt.i18n import _

Translator = Callable[[GraphTranslator, onnx.NodeProto, list], list]


def attribute(node: onnx.NodeProto, name: str, default=None):
    """Return the value of attribute ``name`` of ``node``, or ``default``."""
    for item in node.attribute:
        if item.name == name:
            return onnx.helper.get_attribute_value(item)
    return default


def unsupported(node: onnx.NodeProto, detail: str) -> ModelError:
    """Return the error for a case of a supported operator that the compiler does not translate."""
    return ModelError(
        _("The SQL compiler cannot translate the ONNX node {node} ({op}): {detail}.").format(
            node=node.name or node.output[0], op=node.op_type, detail=detail
        )
    )


def _literal(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return format_number(value)


def _columns(node: onnx.NodeProto, tensor: Tensor, width: int) -> list[str]:
    """Return ``width`` SQL expressions for ``tensor`` broadcast over the feature axis."""
    if isinstance(tensor, Symbolic):
        if tensor.width == width:
            return list(tensor.columns)
        if tensor.width == 1:
            return list(tensor.columns) * width
        raise unsupported(node, f"cannot broadcast width {tensor.width} to {width}")
    flat = np.asarray(tensor)
    if flat.size == 1:
        return [_literal(flat.reshape(-1)[0])] * width
    if flat.ndim > 2 or (flat.ndim == 2 and flat.shape[0] != 1) or flat.shape[-1] != width:
        raise unsupported(node, f"a constant of shape {list(flat.shape)} does not broadcast over {width} columns")
    return [_literal(value) for value in flat.reshape(-1)]


def _width(tensors: list[Tensor]) -> int:
    widths = [t.width for t in tensors if isinstance(t, Symbolic)]
    constant_widths = [np.asarray(t).shape[-1] for t in tensors if not isinstance(t, Symbolic) and np.asarray(t).size > 1]
    return max(widths + constant_widths)


def elementwise(numpy_function: Callable, sql: Callable[..., str], *, is_bool: bool = False) -> Translator:
    """Return a translator for an elementwise operator given its numpy and SQL forms."""

    def translate(translator: GraphTranslator, node: onnx.NodeProto, inputs: list) -> list:
        if not any(isinstance(tensor, Symbolic) for tensor in inputs):
            return [numpy_function(*inputs)]
        width = _width(inputs)
        columns = [_columns(node, tensor, width) for tensor in inputs]
        return [Symbolic(tuple(sql(*arguments) for arguments in zip(*columns)), is_bool=is_bool)]

    return translate


def reusing(translator_function: Translator) -> Translator:
    """Wrap a translator whose SQL names an input more than once: such inputs become columns first."""

    def translate(translator: GraphTranslator, node: onnx.NodeProto, inputs: list) -> list:
        prepared = [
            translator.materialize(tensor, translator.label(name)) if isinstance(tensor, Symbolic) else tensor
            for name, tensor in zip(node.input, inputs)
        ]
        return translator_function(translator, node, prepared)

    return translate


_ONE = format_number(1.0)
_ZERO = format_number(0.0)


def _multiply(left: str, right: str) -> str:
    # x * 1 is exactly x, even for NaN and inf.
    if right == _ONE:
        return left
    if left == _ONE:
        return right
    return f"({left} * {right})"


def _add(left: str, right: str) -> str:
    # x + 0 equals x for every x (only the sign of a zero can change).
    if right == _ZERO:
        return left
    if left == _ZERO:
        return right
    return f"({left} + {right})"


def translate_where(translator: GraphTranslator, node: onnx.NodeProto, inputs: list) -> list:
    condition, when_true, when_false = inputs
    if not isinstance(condition, Symbolic):
        if not any(isinstance(tensor, Symbolic) for tensor in inputs):
            return [np.where(condition, when_true, when_false)]
        # A constant condition picks one side per column at compile time.
        width = _width(inputs)
        flags = np.broadcast_to(np.asarray(condition).reshape(-1), (width,))
        true_columns = _columns(node, when_true, width)
        false_columns = _columns(node, when_false, width)
        return [Symbolic(tuple(t if flag else f for flag, t, f in zip(flags, true_columns, false_columns)))]
    width = _width(inputs)
    columns = zip(*(_columns(node, tensor, width) for tensor in inputs))
    return [Symbolic(tuple(f"(case when {c} then {t} else {f} end)" for c, t, f in columns))]


def translate_cast(translator: GraphTranslator, node: onnx.NodeProto, inputs: list) -> list:
    (tensor,) = inputs
    target = attribute(node, "to")
    if target not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.BOOL):
        raise unsupported(node, f"cast to {onnx.TensorProto.DataType.Name(target)}")
    if not isinstance(tensor, Symbolic):
        dtype = bool if target == onnx.TensorProto.BOOL else np.float32
        return [np.asarray(tensor).astype(dtype)]
    if target == onnx.TensorProto.BOOL:
        return [Symbolic(tuple(f"({c} != 0)" for c in tensor.columns), is_bool=True)] if not tensor.is_bool else [tensor]
    if tensor.is_bool:
        return [Symbolic(tuple(f"({c})::double" for c in tensor.columns))]
    return [tensor]


def translate_is_inf(translator: GraphTranslator, node: onnx.NodeProto, inputs: list) -> list:
    (tensor,) = inputs
    negative = attribute(node, "detect_negative", 1)
    positive = attribute(node, "detect_positive", 1)
    if not isinstance(tensor, Symbolic):
        values = np.asarray(tensor)
        return [(np.isneginf(values) & bool(negative)) | (np.isposinf(values) & bool(positive))]
    if negative and positive:
        template = "isinf({c})"
    elif positive:
        template = "({c} = 'inf'::double)"
    elif negative:
        template = "({c} = '-inf'::double)"
    else:
        template = "false"
    return [Symbolic(tuple(template.format(c=c) for c in tensor.columns), is_bool=True)]


def translate_matmul(translator: GraphTranslator, node: onnx.NodeProto, inputs: list) -> list:
    left, right = inputs
    if not isinstance(left, Symbolic) and not isinstance(right, Symbolic):
        return [np.matmul(left, right)]
    if isinstance(right, Symbolic):
        raise unsupported(node, "the right operand must be a constant weight matrix")
    return [_dense(translator, node, left, np.asarray(right, dtype=np.float64), None)]


def translate_gemm(translator: GraphTranslator, node: onnx.NodeProto, inputs: list) -> list:
    left, right = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    if attribute(node, "transA", 0):
        raise unsupported(node, "transA=1")
    if isinstance(right, Symbolic) or isinstance(bias, Symbolic):
        raise unsupported(node, "B and C must be constants")
    weights = np.asarray(right, dtype=np.float64) * float(attribute(node, "alpha", 1.0))
    if attribute(node, "transB", 0):
        weights = weights.T
    if bias is not None:
        bias = np.asarray(bias, dtype=np.float64) * float(attribute(node, "beta", 1.0))
    return [_dense(translator, node, left, weights, bias)]


def _dense(translator: GraphTranslator, node: onnx.NodeProto, left: Tensor, weights: np.ndarray, bias) -> Symbolic:
    """Unroll ``left @ weights (+ bias)`` into one sum of products per output column."""
    if not isinstance(left, Symbolic):
        raise unsupported(node, "the left operand must be the feature batch")
    if weights.ndim != 2 or weights.shape[0] != left.width:
        raise unsupported(node, f"weights of shape {list(weights.shape)} do not fit {left.width} input columns")
    # Each input column is read once per output column, so it must be a bare column.
    left = translator.materialize(left, translator.label(node.input[0]))
    bias_values = np.zeros(weights.shape[1]) if bias is None else np.broadcast_to(np.asarray(bias).reshape(-1), (weights.shape[1],))
    columns = []
    for j in range(weights.shape[1]):
        terms = [f"{column} * {format_number(weight)}" for column, weight in zip(left.columns, weights[:, j])]
        if bias is not None:
            terms.append(format_number(bias_values[j]))
        columns.append("(" + " + ".join(terms) + ")")
    return Symbolic(tuple(columns))


def translate_identity(translator: GraphTranslator, node: onnx.NodeProto, inputs: list) -> list:
    return [inputs[0]]


def _softplus_sql(c: str) -> str:
    # log(1 + exp(x)) written so that exp never overflows for large x.
    return f"(greatest({c}, 0e+0) + ln(1e+0 + exp(-abs({c}))))"


def _numpy_softplus(x):
    return np.logaddexp(0, x).astype(np.asarray(x).dtype)


def _numpy_sigmoid(x):
    return (1 / (1 + np.exp(-x))).astype(np.asarray(x).dtype)


# NOTE: greatest/least return NaN when either argument is NaN, while ONNX
# Runtime's Max and Min leave NaN handling to the platform; the exported
# models only apply them to values already imputed, so NaN never reaches them.
OPERATORS: dict[str, Translator] = {
    "Add": elementwise(np.add, _add),
    "Sub": elementwise(np.subtract, lambda a, b: f"({a} - {b})"),
    "Mul": elementwise(np.multiply, _multiply),
    "Div": elementwise(np.divide, lambda a, b: f"({a} / {b})"),
    "Max": elementwise(np.maximum, lambda *args: f"greatest({', '.join(args)})"),
    "Min": elementwise(np.minimum, lambda *args: f"least({', '.join(args)})"),
    "Neg": elementwise(np.negative, lambda a: f"(-{a})"),
    "Abs": elementwise(np.abs, lambda a: f"abs({a})"),
    "Log": elementwise(np.log, lambda a: f"ln({a})"),
    "Exp": elementwise(np.exp, lambda a: f"exp({a})"),
    "Sqrt": elementwise(np.sqrt, lambda a: f"sqrt({a})"),
    "Tanh": elementwise(np.tanh, lambda a: f"tanh({a})"),
    "Relu": elementwise(lambda x: np.maximum(x, 0), lambda a: f"greatest({a}, 0e+0)"),
    "Sigmoid": elementwise(_numpy_sigmoid, lambda a: f"(1e+0 / (1e+0 + exp(-{a})))"),
    "Softplus": reusing(elementwise(_numpy_softplus, _softplus_sql)),
    "IsNaN": elementwise(np.isnan, lambda a: f"isnan({a})", is_bool=True),
    "IsInf": translate_is_inf,
    "Not": elementwise(np.logical_not, lambda a: f"(not {a})", is_bool=True),
    "And": elementwise(np.logical_and, lambda a, b: f"({a} and {b})", is_bool=True),
    "Or": elementwise(np.logical_or, lambda a, b: f"({a} or {b})", is_bool=True),
    "Where": translate_where,
    "Cast": translate_cast,
    "Identity": translate_identity,
    "MatMul": translate_matmul,
    "Gemm": translate_gemm,
}
