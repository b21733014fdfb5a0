"""Manual counts in the sample session: a microscopist's count per taxon, with its volume.

The rule sets monitor taxa the model was never trained on (Alexandrium, Dinophysis,
Karenia ...): the summary lists them as "not monitored by this model: count these by
microscope". A technician who does so enters the count here; it belongs to one sample of
the session, is stored with it (each save writes it with the sample's revision) and is
assessed by the alerts like the model's counts, over its own volume, marked "manual
count" (:func:`phytoscope.core.hab.assess`). A mixin of
:class:`~phytoscope.core.session.SampleSession`, kept apart so the session module stays
about organisms and records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from phytoscope.core.hab import RuleSet, manual_candidates
from phytoscope.core.sample import ManualCount
from phytoscope.core.samples import SampleDraft
from phytoscope.errors import ConfigError
from phytoscope.modelcard import ModelCard


class ManualCounts:
    """Add, remove and list manual counts per sample key (see the module docstring)."""

    card: ModelCard | None
    rule_set: RuleSet | None
    clock: Callable[[], Any]
    _manual: dict[str, dict[str, ManualCount]]

    def samples(self) -> list[SampleDraft]:  # pragma: no cover - the session's
        raise NotImplementedError

    def _emit(self, event: str, payload: Any = None) -> None:  # pragma: no cover
        raise NotImplementedError

    def _key_of(self, key: str | None) -> str:
        """The sample a count is for: ``key``, or the session's only sample."""
        keys = [d.key for d in self.samples()]
        if key is not None:
            if key not in keys and key not in self._manual:
                raise ConfigError(f"no sample {key!r} in this session (it has {keys or 'none'})")
            return key
        if len(keys) != 1:
            raise ConfigError(
                "say which sample the count is for: this session holds "
                + (f"{len(keys)} samples ({', '.join(keys)})" if keys else "no sample yet")
            )
        return keys[0]

    def add_manual_count(
        self,
        taxon: str,
        count: int,
        volume_ml: float,
        key: str | None = None,
        who: str = "",
        note: str = "",
    ) -> ManualCount:
        """Record (or replace) the count of ``taxon`` found in ``volume_ml`` mL of the sample
        ``key`` (default: the only sample). Saving writes it with the sample."""
        sample = self._key_of(key)
        at = self.clock().isoformat(timespec="seconds")
        m = ManualCount(" ".join(taxon.split()), int(count), float(volume_ml), who, at, note)
        self._manual.setdefault(sample, {})[m.taxon] = m
        self._emit("changed")
        return m

    def remove_manual_count(self, taxon: str, key: str | None = None) -> None:
        """Forget a manual count (saving then removes it from the sample's record)."""
        sample = self._key_of(key)
        name = " ".join(taxon.split())
        if self._manual.get(sample, {}).pop(name, None) is None:
            raise ConfigError(f"no manual count of {name!r} in this sample")
        self._emit("changed")

    def manual_counts(self, key: str) -> tuple[ManualCount, ...]:
        return tuple(self._manual.get(key, {}).values())

    def manual_candidates(self) -> list[str]:
        """The rule set's taxa the model cannot see: what to count by microscope."""
        return manual_candidates(self.rule_set, self.card) if self.rule_set else []
