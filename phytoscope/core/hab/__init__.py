"""HAB rule sets, alert levels and alerts: from concentrations to what a regulator acts on.

Rule sets are data (``resources/rules/hab_thresholds.csv`` + ``rule_sets.csv``), never
code, so a site can check them against the programme's current document and override any
row (see ``resources/rules/README.md``). Public API, used by the CLI and the GUI alert panel:

- :func:`available_rule_sets` -> names; :func:`load_rule_set` (name, optional overrides CSV)
  -> :class:`RuleSet`, whose ``version`` string (dataset version + hash of the rows used)
  is recorded with every alert.
- :func:`assess` (counts per model class, volume, model card, rule set) ->
  :class:`Assessment` per monitored taxon (every level, "green" included) and the rule-set
  taxa that the model cannot recognise ("not monitored by this model"); a microscopist's
  counts of those taxa (``manual``, each over its own volume) are assessed alike and
  marked "manual count" (:func:`manual_candidates` lists the taxa to count). Class names
  and rule taxa are matched in one place, :func:`taxon_key` (case-insensitive, ``_`` as a
  space), so a genus a lab teaches (``phytoscope learn``) is monitored at once;
  :func:`unrecognised` lists the rule-set taxa no class stands for.
- :func:`make_alerts` -> frozen :class:`~phytoscope.types.Alert` for every assessment above
  the rule set's lowest ("below") level.
- :func:`record_sample` does all of it and persists the sample, its counts and its alerts.

Decisions, each tested:

- **Boundaries.** A concentration exactly on a threshold is in the upper band (``>=``), as
  official control programmes write "at or above"; a rule set may say ``>`` instead
  (Florida FWC writes its categories as ">1,000-10,000 cells/L").
- **Genus-only model.** A model class that is a genus matches the genus row and every
  species row of that genus; the most severe resulting level wins, ties going to the lowest
  threshold (the most conservative species threshold, e.g. Denmark's Dinophysis acuta at
  100 cells/L for the class "Dinophysis").
- **Groups.** A ``group`` row (WHO "Cyanobacteria") applies to the *sum* of all classes
  whose card ``group`` (or name) is that group, since the guideline is about total
  cyanobacterial cells.
- **Chain-forming classes** are counted in chains/L. Chains/L are compared with the per-cell
  threshold, and because cells >= chains the level found is a *lower bound*: an alert is
  certain, a lower level may hide a higher one. The assessment and alert carry
  ``lower_bound=True`` and the flag "cells underestimated"; reports print "at least".
- **Zeros.** When nothing is found but one organism would already reach the lowest
  threshold (detection limit >= threshold), the assessment says so: the volume was too
  small to rule the taxon out.
"""

from phytoscope.core.hab.alerts import (
    SampleResult,
    describe_alert,
    make_alerts,
    record_sample,
    utc_now,
)
from phytoscope.core.hab.assess import (
    Assessment,
    HabResult,
    assess,
    classes_for,
    genus_key,
    manual_candidates,
    matching,
    rule_taxon_named,
    taxon_key,
    unrecognised,
)
from phytoscope.core.hab.rules import (
    BOUNDARIES,
    COLUMNS,
    DEFAULT_BELOW,
    NOT_MONITORED,
    RANKS,
    Band,
    RuleSet,
    RuleTaxon,
    all_taxa,
    available_rule_sets,
    load_rule_set,
    rules_dir,
    user_overrides_path,
)

__all__ = [
    "BOUNDARIES",
    "COLUMNS",
    "DEFAULT_BELOW",
    "NOT_MONITORED",
    "RANKS",
    "Assessment",
    "Band",
    "HabResult",
    "RuleSet",
    "RuleTaxon",
    "SampleResult",
    "all_taxa",
    "assess",
    "available_rule_sets",
    "classes_for",
    "describe_alert",
    "genus_key",
    "load_rule_set",
    "make_alerts",
    "manual_candidates",
    "matching",
    "record_sample",
    "rule_taxon_named",
    "rules_dir",
    "taxon_key",
    "unrecognised",
    "user_overrides_path",
    "utc_now",
]
