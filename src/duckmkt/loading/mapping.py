"""Column mappings: which source column fills each field of a contract.

A mapping file is TOML. The short form maps one kind::

    kind = "orders"
    [columns]
    customer_id = "Customer ID"

The long form maps several kinds from one file, one table per kind, and may
share reading options in ``[file]``::

    [file]
    delimiter = ";"
    [customers.generated]
    customer_id = "line"
    [customers.columns]
    gender = "性别"

Besides ``columns`` a part may set ``constants`` (field = literal value),
``generated`` (field = "line": an id made of the file name and line number), ``attributes`` (customers: the source
columns kept as attributes), ``date_formats`` (field = strptime format or
"day-first"/"month-first") and ``derived_dates`` (see ``dates.DerivedDate``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from duckmkt.errors import MappingError
from duckmkt.i18n import _
from duckmkt.loading.contracts import CONTRACTS, KINDS

# Reading options a mapping may set in [file] (or [csv], the first loader's name).
FILE_OPTIONS = ("delimiter", "encoding", "date_format", "timezone", "decimal_comma", "sheet", "null_values")
PART_KEYS = ("columns", "constants", "generated", "attributes", "date_formats", "derived_dates")
ID_GENERATORS = ("line",)


@dataclass(frozen=True)
class Mapping:
    """Mapping of one record kind: the source column, constant or generator behind each field."""

    name: str
    columns: dict[str, str]
    csv_options: dict[str, object] = field(default_factory=dict)
    kind: str = "orders"
    constants: dict[str, str] = field(default_factory=dict)
    generated: dict[str, str] = field(default_factory=dict)
    attributes: tuple[str, ...] | None = None
    date_formats: dict[str, str] = field(default_factory=dict)
    derived_dates: dict[str, dict[str, object]] = field(default_factory=dict)

    @property
    def filled_fields(self) -> set[str]:
        return set(self.columns) | set(self.constants) | set(self.derived_dates) | set(self.generated)

    @property
    def source_columns(self) -> list[str]:
        """Return every source column the mapping reads, in mapping order."""
        names = list(self.columns.values())
        for spec in self.derived_dates.values():
            names += [str(spec[key]) for key in ("day", "month") if key in spec]
        names += list(self.attributes or ())
        return list(dict.fromkeys(names))

    def validate(self) -> None:
        """Raise MappingError unless every required field is filled and no unknown field is."""
        if self.kind not in CONTRACTS:
            raise MappingError(
                _("Mapping {mapping} has unknown kind {kind!r}; the kinds are: {kinds}.").format(
                    mapping=self.name, kind=self.kind, kinds=", ".join(KINDS)
                )
            )
        contract = CONTRACTS[self.kind]
        missing = [name for name in contract.required_names if name not in self.filled_fields]
        if missing:
            raise MappingError(
                _("Mapping {mapping} does not map the required {kind} fields: {fields}.").format(
                    mapping=self.name, kind=self.kind, fields=", ".join(missing)
                )
            )
        mapped = self.filled_fields | set(self.date_formats)
        unknown = sorted(mapped - set(contract.field_names))
        if unknown:
            raise MappingError(
                _("Mapping {mapping} has unknown fields {fields}; the {kind} fields are: {known}.").format(
                    mapping=self.name, fields=", ".join(unknown), kind=self.kind, known=", ".join(contract.field_names)
                )
            )
        for name, generator in self.generated.items():
            if generator not in ID_GENERATORS:
                raise MappingError(
                    _("Mapping {mapping} sets generated {field} = {value!r}; the only generator is \"line\".").format(
                        mapping=self.name, field=name, value=generator
                    )
                )
        unknown_options = sorted(set(self.csv_options) - set(FILE_OPTIONS))
        if unknown_options:
            raise MappingError(
                _("Mapping {mapping} has unknown file options {options}; the options are: {known}.").format(
                    mapping=self.name, options=", ".join(unknown_options), known=", ".join(FILE_OPTIONS)
                )
            )


def preset_names() -> list[str]:
    """Return the names of the mapping presets shipped with duckmkt."""
    folder = resources.files("duckmkt") / "presets"
    return sorted(Path(str(entry)).stem for entry in folder.iterdir() if str(entry).endswith(".toml"))


def _read_document(path: str | Path | None, preset: str | None) -> tuple[str, dict]:
    if preset is not None:
        if preset not in preset_names():
            from duckmkt.suggestions import closest_name

            suggestion = closest_name(preset, preset_names())
            if suggestion is not None:
                raise MappingError(
                    _("Unknown preset {preset!r}; did you mean {suggestion}? The presets are: {presets}.").format(
                        preset=preset, suggestion=suggestion, presets=", ".join(preset_names())
                    )
                )
            raise MappingError(
                _("Unknown preset {preset!r}; the presets are: {presets}.").format(
                    preset=preset, presets=", ".join(preset_names())
                )
            )
        text = (resources.files("duckmkt") / "presets" / f"{preset}.toml").read_text(encoding="utf-8")
        name = preset
    elif path is not None:
        path = Path(path)
        if not path.is_file():
            raise MappingError(_("Mapping file {path} not found.").format(path=path))
        text = path.read_text(encoding="utf-8")
        name = str(path)
    else:
        raise MappingError(_("Give a mapping file or a preset name."))

    try:
        return name, tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MappingError(_("Mapping {mapping} is not valid TOML: {error}").format(mapping=name, error=error)) from error


def _string_table(document: dict, key: str, name: str) -> dict[str, str]:
    table = document.get(key, {})
    if not isinstance(table, dict) or not all(isinstance(value, str) for value in table.values()):
        raise MappingError(
            _("Mapping {mapping} needs [{key}] to be a table of field = \"text\" lines.").format(mapping=name, key=key)
        )
    return dict(table)


def _parse_part(name: str, kind: str, part: dict, file_options: dict) -> Mapping:
    unknown = sorted(set(part) - set(PART_KEYS))
    if unknown:
        raise MappingError(
            _("Mapping {mapping} has unknown keys {keys} under [{kind}]; the keys are: {known}.").format(
                mapping=name, keys=", ".join(unknown), kind=kind, known=", ".join(PART_KEYS)
            )
        )
    attributes = part.get("attributes")
    if attributes is not None and not (isinstance(attributes, list) and all(isinstance(a, str) for a in attributes)):
        raise MappingError(
            _("Mapping {mapping} needs attributes to be a list of source column names.").format(mapping=name)
        )
    derived = part.get("derived_dates", {})
    if not isinstance(derived, dict) or not all(isinstance(spec, dict) for spec in derived.values()):
        raise MappingError(
            _("Mapping {mapping} needs [{kind}.derived_dates] to hold one table per field.").format(mapping=name, kind=kind)
        )
    mapping = Mapping(
        name=name,
        columns=_string_table(part, "columns", name),
        csv_options=dict(file_options),
        kind=kind,
        constants=_string_table(part, "constants", name),
        generated=_string_table(part, "generated", name),
        attributes=tuple(attributes) if attributes is not None else None,
        date_formats=_string_table(part, "date_formats", name),
        derived_dates={key: dict(spec) for key, spec in derived.items()},
    )
    mapping.validate()
    return mapping


def read_mappings(path: str | Path | None = None, *, preset: str | None = None) -> list[Mapping]:
    """Read every part of a mapping file or preset, one Mapping per kind."""
    name, document = _read_document(path, preset)
    file_options = dict(document.get("csv", {})) | dict(document.get("file", {}))

    if "columns" in document:
        part = {key: document[key] for key in PART_KEYS if key in document}
        return [_parse_part(name, str(document.get("kind", "orders")), part, file_options)]

    parts = [
        _parse_part(name, kind, document[kind], file_options)
        for kind in document
        if kind in CONTRACTS and isinstance(document[kind], dict)
    ]
    if not parts:
        raise MappingError(
            _("Mapping {mapping} needs a [columns] table or one table per kind ({kinds}).").format(
                mapping=name, kinds=", ".join(KINDS)
            )
        )
    return parts


def read_mapping(path: str | Path | None = None, *, preset: str | None = None, kind: str | None = None) -> Mapping:
    """Read the part of a mapping file or preset for ``kind`` (by default its first part)."""
    parts = read_mappings(path, preset=preset)
    if kind is None:
        return parts[0]
    for part in parts:
        if part.kind == kind:
            return part
    raise MappingError(
        _("Mapping {mapping} has no part for {kind}; it maps: {kinds}.").format(
            mapping=parts[0].name, kind=kind, kinds=", ".join(part.kind for part in parts)
        )
    )


def check_mapping_columns(mapping: Mapping, columns: list[str], file_name: str) -> None:
    """Raise MappingError naming any mapped column the file does not have, with the file's columns."""
    absent = [source for source in mapping.source_columns if source not in columns]
    if absent:
        raise MappingError(
            _("Mapping {mapping} names columns that {file} does not have: {absent}. The file's columns are: {columns}.").format(
                mapping=mapping.name, file=file_name, absent=", ".join(absent), columns=", ".join(columns)
            )
        )


def guess_mapping(columns: list[str], kind: str = "orders") -> Mapping | None:
    """Return the contract itself, or the first preset part of ``kind``, whose columns the file has."""
    contract = CONTRACTS[kind]
    identity = {name: name for name in contract.field_names if name in columns}
    if all(name in identity for name in contract.required_names):
        return Mapping(name=f"{kind} contract", columns=identity, kind=kind)
    for preset in preset_names():
        for mapping in read_mappings(preset=preset):
            if mapping.kind == kind and all(source in columns for source in mapping.source_columns):
                return mapping
    return None
