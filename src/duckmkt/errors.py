"""Exceptions raised by duckmkt.

Every error message names the value at fault, what was expected and what to
do next. Messages never include customer rows, ids or feature values.
"""


class DuckmktError(Exception):
    """Base class of every error duckmkt raises on purpose."""


class MappingError(DuckmktError):
    """A column mapping does not fit the file it is applied to."""


class InputFileError(DuckmktError):
    """An input file is missing, unreadable or of an unsupported format."""


class DataError(DuckmktError):
    """The data in the database cannot support the requested step."""


class FeatureError(DuckmktError):
    """A feature struct passed to a scoring function is missing a field or has a wrong type."""


class ModelError(DuckmktError):
    """A model is missing, fails verification or does not match its metadata."""


class ExportError(DuckmktError):
    """The ONNX export of a trained model failed or disagrees with Keras."""


class StrategyRuleError(DuckmktError):
    """A strategy rule is invalid: an unsafe or unparsable condition, a duplicate code or priority."""


class IncompleteRuleError(StrategyRuleError):
    """A new strategy rule is missing required values.

    ``code`` is the rule, ``missing`` the column names without a value and
    ``suggestion`` an existing rule code close to ``code``, or None. The CLI
    uses them to name its options instead of the columns.
    """

    def __init__(self, message: str, code: str, missing: list[str], suggestion: str | None):
        super().__init__(message)
        self.code = code
        self.missing = missing
        self.suggestion = suggestion
