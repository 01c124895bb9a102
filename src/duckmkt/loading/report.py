"""The report of one load: what was read, loaded and rejected, and why."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from duckmkt.i18n import _


@dataclass(frozen=True)
class LoadReport:
    """Report of one load of one record kind from one file.

    ``n_rows_read`` equals ``n_rows_loaded + n_rows_rejected +
    n_rows_already_loaded + n_rows_merged``.
    """

    source_file: str
    sha256: str
    mapping: str
    n_rows_read: int
    n_rows_loaded: int
    skipped_as_repeat: bool
    line_status_counts: dict[str, int]
    kind: str = "orders"
    n_rows_rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    # Rows identical to rows an earlier load of another file already added.
    n_rows_already_loaded: int = 0
    # Rows folded into another row of the same customer or product.
    n_rows_merged: int = 0
    file_format: str = ""
    encoding: str | None = None
    encoding_confidence: float | None = None
    delimiter: str | None = None
    # Source column -> "day-first" or "month-first", where the column needed it.
    date_orders: dict[str, str] = field(default_factory=dict)
    n_dates_converted_to_utc: int = 0
    warnings: tuple[str, ...] = ()
    # Earlier loads of the same file that this load replaced (``--replace``),
    # and how many of their rows and rejected rows it deleted.
    replaced_load_ids: tuple[str, ...] = ()
    n_rows_replaced: int = 0
    n_rejected_rows_replaced: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    def summary(self, *, rejected_rows_kept: bool = True) -> str:
        """Return the report as translated lines of text.

        ``rejected_rows_kept`` is False when the database was removed after
        the load, so the lines do not point to mkt.rejected_rows.
        """
        if self.skipped_as_repeat:
            return _(
                "{file}: {kind} already loaded from a file with the same sha256; nothing added. If that load was "
                "wrong, correct the options and add --replace: the rows and rejected rows of the earlier load are "
                "deleted and the file is loaded again."
            ).format(file=self.source_file, kind=self.kind)
        lines = [
            _("{file} ({kind}, mapping {mapping}): {read} rows read, {loaded} loaded, {rejected} rejected, "
              "{already} already loaded, {merged} merged.").format(
                file=self.source_file, kind=self.kind, mapping=self.mapping, read=f"{self.n_rows_read:,}",
                loaded=f"{self.n_rows_loaded:,}", rejected=f"{self.n_rows_rejected:,}",
                already=f"{self.n_rows_already_loaded:,}", merged=f"{self.n_rows_merged:,}",
            )
        ]
        if self.replaced_load_ids:
            lines.append(
                _("Replaced the earlier load {load_ids} of this file: deleted {rows} rows and {rejected} rejected rows.").format(
                    load_ids=", ".join(self.replaced_load_ids), rows=f"{self.n_rows_replaced:,}",
                    rejected=f"{self.n_rejected_rows_replaced:,}",
                )
            )
        if self.encoding:
            lines.append(
                _("Format {format}, encoding {encoding} (confidence {confidence:.2f}), delimiter {delimiter!r}.").format(
                    format=self.file_format, encoding=self.encoding, confidence=self.encoding_confidence or 0.0,
                    delimiter=self.delimiter,
                )
            )
        for reason, count in sorted(self.rejected_by_reason.items()):
            if rejected_rows_kept:
                lines.append(_("Rejected as {reason}: {count} rows (see mkt.rejected_rows).").format(reason=reason, count=count))
            else:
                lines.append(_("Rejected as {reason}: {count} rows.").format(reason=reason, count=count))
        for column, order in sorted(self.date_orders.items()):
            lines.append(_("Dates in {column} read {order}.").format(column=column, order=order))
        if self.n_dates_converted_to_utc:
            lines.append(
                _("{count} date values carried a time zone and were converted to UTC.").format(count=self.n_dates_converted_to_utc)
            )
        lines += [_("Warning: {warning}").format(warning=warning) for warning in self.warnings]
        return "\n".join(lines)
