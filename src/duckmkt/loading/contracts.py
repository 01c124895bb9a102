"""The record kinds duckmkt loads and the fields of each.

Each kind is a contract: the fields a mapping may fill, which are required,
the type the loader converts each one to, and the raw table it lands in.
docs/data-contracts.md describes the same contracts for analysts.
"""

from __future__ import annotations

from dataclasses import dataclass

# Field types. Each one names the conversion in ``duckmkt.loading.values`` or
# ``duckmkt.loading.dates`` that checks a source value.
ID = "id"
TEXT = "text"
TIMESTAMP = "timestamp"
NUMBER = "number"
INTEGER = "integer"
FLAG = "flag"


@dataclass(frozen=True)
class Field:
    """One field of a contract."""

    name: str
    type: str
    required: bool


@dataclass(frozen=True)
class Contract:
    """The fields of one record kind and where its rows are stored."""

    kind: str
    table: str
    fields: tuple[Field, ...]
    # Entity kinds hold one row per key in a file; repeated keys are merged.
    entity_key: str | None = None
    # Orders keep rows with a missing required value: the staging view flags
    # them ('invalid', 'missing_customer') and mkt.data_quality counts them.
    keeps_missing_values: bool = False
    # Orders are stored as text because the staging view types them.
    stores_text: bool = False
    # Customers keep unmapped source columns as a JSON object.
    keeps_attributes: bool = False

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(field.name for field in self.fields)

    @property
    def required_names(self) -> tuple[str, ...]:
        return tuple(field.name for field in self.fields if field.required)

    def field(self, name: str) -> Field:
        return next(field for field in self.fields if field.name == name)


CONTRACTS: dict[str, Contract] = {
    "orders": Contract(
        kind="orders",
        table="raw.order_lines",
        fields=(
            Field("customer_id", ID, True),
            Field("order_id", ID, True),
            Field("ordered_at", TIMESTAMP, True),
            Field("product_id", ID, True),
            Field("quantity", NUMBER, True),
            Field("unit_price", NUMBER, True),
            Field("description", TEXT, False),
            Field("country", TEXT, False),
        ),
        keeps_missing_values=True,
        stores_text=True,
    ),
    "events": Contract(
        kind="events",
        table="raw.events",
        fields=(
            Field("customer_id", ID, True),
            Field("event_at", TIMESTAMP, True),
            Field("event_type", TEXT, True),
            Field("product_id", ID, False),
            Field("session_id", ID, False),
            Field("channel", TEXT, False),
        ),
    ),
    "interactions": Contract(
        kind="interactions",
        table="raw.interactions",
        fields=(
            Field("customer_id", ID, True),
            Field("occurred_at", TIMESTAMP, True),
            Field("channel", TEXT, True),
            Field("campaign_id", ID, True),
            Field("interaction_type", TEXT, True),
            Field("outcome", TEXT, True),
            Field("treatment", FLAG, False),
        ),
    ),
    "customers": Contract(
        kind="customers",
        table="raw.customers",
        fields=(
            Field("customer_id", ID, True),
            Field("signed_up_at", TIMESTAMP, False),
            Field("region", TEXT, False),
            Field("country", TEXT, False),
            Field("gender", TEXT, False),
            Field("birth_year", INTEGER, False),
        ),
        entity_key="customer_id",
        keeps_attributes=True,
    ),
    "products": Contract(
        kind="products",
        table="raw.products",
        fields=(
            Field("product_id", ID, True),
            Field("category", TEXT, False),
            Field("description", TEXT, False),
            Field("unit_price", NUMBER, False),
        ),
        entity_key="product_id",
    ),
}

KINDS: tuple[str, ...] = tuple(CONTRACTS)

# Kept for callers of the first loader, which only knew orders.
ORDER_FIELDS = CONTRACTS["orders"].required_names
OPTIONAL_ORDER_FIELDS = tuple(
    name for name in CONTRACTS["orders"].field_names if name not in ORDER_FIELDS
)
