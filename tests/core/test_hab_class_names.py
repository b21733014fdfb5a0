"""Class names a lab teaches are matched to rule-set taxa in one place (``hab.taxon_key``).

``phytoscope learn`` takes class names from folder names, which a technician types (or the
corrections export writes, with ``_`` for a space): the alerts must follow them at once.
"""

from __future__ import annotations

from phytoscope.core import hab
from phytoscope.core.sample import given_volume
from phytoscope.modelcard import ClassInfo
from tests.cards import card_of

BASE = (
    ClassInfo("Pseudo-nitzschia", hab=True, chain_forming=True),
    ClassInfo("Tripos"),
    ClassInfo("detritus/other", rank="other"),
)


def test_taxon_key_ignores_case_underscores_and_extra_spaces():
    assert hab.taxon_key("Dinophysis_acuminata") == hab.taxon_key("dinophysis  ACUMINATA")
    assert hab.genus_key("karenia_brevis") == "karenia"
    assert hab.taxon_key("Alexandrium") != hab.taxon_key("Alexandrium catenella")


def test_a_learnt_lower_case_genus_is_monitored_at_once():
    rules = hab.load_rule_set("scotland_habreports")
    before = hab.assess({}, given_volume(1000), card_of(*BASE), rules)
    assert "Alexandrium" in before.not_monitored

    learnt = card_of(*BASE, ClassInfo("alexandrium", hab=True))
    after = hab.assess({"alexandrium": 1000}, given_volume(1000), learnt, rules)
    assert "Alexandrium" not in after.not_monitored
    (alexandrium,) = [a for a in after.assessments if a.rule_taxon == "Alexandrium"]
    assert alexandrium.classes == ("alexandrium",) and alexandrium.is_alert


def test_a_species_folder_name_meets_its_species_row_and_the_genus_row():
    taught = card_of(*BASE, ClassInfo("Dinophysis_acuminata", rank="species", hab=True))
    norway = hab.load_rule_set("norway_mattilsynet")
    species = hab.classes_for(norway.taxon("Dinophysis acuminata"), taught)
    assert [c.name for c in species] == ["Dinophysis_acuminata"]
    scotland = hab.load_rule_set("scotland_habreports")
    assert [c.name for c in hab.classes_for(scotland.taxon("Dinophysis"), taught)] == [
        "Dinophysis_acuminata"
    ]


def test_a_genus_class_stands_for_a_species_rule_conservatively():
    florida = hab.load_rule_set("florida_fwc")
    taught = card_of(*BASE, ClassInfo("KARENIA", hab=True))
    result = hab.assess({"KARENIA": 0}, given_volume(1000), taught, florida)
    assert result.not_monitored == ()
    assert result.assessments[0].classes == ("KARENIA",)


def test_unrecognised_shrinks_as_genera_are_taught_and_names_take_the_rules_spelling():
    taxa = hab.all_taxa()
    assert ("Karenia brevis", "species") in taxa and ("Cyanobacteria", "group") in taxa
    before = hab.unrecognised(BASE, taxa)
    assert {"Alexandrium", "Dinophysis", "Karenia"} <= set(before)
    after = hab.unrecognised((*BASE, ClassInfo("alexandrium"), ClassInfo("Karenia_brevis")), taxa)
    assert "Alexandrium" not in after and "Karenia" not in after and "Dinophysis" in after
    assert hab.rule_taxon_named("karenia_BREVIS", taxa) == ("Karenia brevis", "species")
    assert hab.rule_taxon_named("Tripos", taxa) is None
