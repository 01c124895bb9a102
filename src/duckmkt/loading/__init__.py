"""Load purchases, browsing events, interactions, customers and products.

``load_file`` loads one record kind from a file. ``load_files`` loads every
part of a mapping, because a preset may map several kinds from one file.
``load_orders`` is ``load_file(kind="orders")``. Mappings are TOML files or
the presets in ``duckmkt/presets`` (``read_mapping``, ``read_mappings``).
"""

from duckmkt.loading.contracts import CONTRACTS, KINDS, OPTIONAL_ORDER_FIELDS, ORDER_FIELDS
from duckmkt.loading.dates import AmbiguousDateError
from duckmkt.loading.loader import file_sha256, guess_mappings, load_file, load_files, load_orders
from duckmkt.loading.mapping import (
    Mapping,
    check_mapping_columns,
    guess_mapping,
    preset_names,
    read_mapping,
    read_mappings,
)
from duckmkt.loading.report import LoadReport

__all__ = [
    "CONTRACTS",
    "KINDS",
    "OPTIONAL_ORDER_FIELDS",
    "ORDER_FIELDS",
    "AmbiguousDateError",
    "LoadReport",
    "Mapping",
    "check_mapping_columns",
    "file_sha256",
    "guess_mapping",
    "guess_mappings",
    "load_file",
    "load_files",
    "load_orders",
    "preset_names",
    "read_mapping",
    "read_mappings",
]
