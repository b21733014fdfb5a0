"""Sampling times: an IFCB bin's name, or what the user typed, as UTC ISO 8601.

Split from :mod:`phytoscope.core.samples` (which re-exports these names) so each module
stays readable: a time rule is asked by the pooling rule, the drafts and the exports.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from phytoscope.errors import ConfigError

_NEW_BIN = re.compile(r"D(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})_(IFCB\d+)")
_OLD_BIN = re.compile(r"(IFCB\d+)_(\d{4})_(\d{3})_(\d{2})(\d{2})(\d{2})")


def bin_time(bin_id: str) -> datetime | None:
    """Sampling time (UTC) from an IFCB bin name, or None for another name.

    New names are ``DYYYYMMDDTHHMMSS_IFCBnnn``; old ones ``IFCBn_YYYY_DDD_HHMMSS`` with a
    day of the year. The IFCB stamps its bins in UTC.
    """
    if m := _NEW_BIN.search(bin_id):
        y, mo, d, h, mi, s = map(int, m.groups()[:6])
        return datetime(y, mo, d, h, mi, s, tzinfo=timezone.utc)
    if m := _OLD_BIN.search(bin_id):
        y, doy, h, mi, s = map(int, m.groups()[1:])
        return datetime(y, 1, 1, h, mi, s, tzinfo=timezone.utc) + timedelta(days=doy - 1)
    return None


def bin_instrument(bin_id: str) -> str | None:
    """``IFCB134`` from ``D20220522T003051_IFCB134``, ``IFCB5`` from ``IFCB5_2012_...``."""
    if m := _NEW_BIN.search(bin_id):
        return m.group(7)
    if m := _OLD_BIN.search(bin_id):
        return m.group(1)
    return None


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with its zone (``2022-05-22T00:30:51+00:00``)."""
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def parse_time(text: str, local: timezone | None = None) -> str:
    """A time the user typed, as UTC ISO 8601 with zone.

    ``text`` is ISO 8601 (``2024-06-01 10:00``, ``2024-06-01T10:00:00+02:00``, ``...Z``);
    without a zone it is read in ``local`` (default: this machine's zone), which is what a
    technician typing a clock time means.
    """
    raw = (text or "").strip()
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"sampling time {text!r} is not a date and time: write it as ISO 8601, e.g. "
            "2024-06-01T10:30 (local time) or 2024-06-01T08:30Z (UTC)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=local) if local else moment.astimezone()
    return iso_utc(moment)
