"""A bad profile is one line that names the file, the field and what is allowed (mutation testing
found these messages and two of the checks behind them unchecked: docs/mutation.md)."""

import re

import pytest
import yaml

from imc_sim.devices.families import FAMILIES
from imc_sim.devices.profile import TOP_KEYS, load_profile, profile_from_dict, shipped_profiles
from imc_sim.errors import ImcSimError


def raw(name: str = "pcm") -> dict:
    return yaml.safe_load(shipped_profiles()[name].read_text())


def message(profile: dict, path: str = "mine.yaml") -> str:
    with pytest.raises(ImcSimError) as error:
        profile_from_dict(profile, path)
    return str(error.value)


def test_a_list_element_out_of_range_is_named_with_its_index():
    profile = raw()
    profile["drift"]["table"] = {"g": [-1.0, 25.0], "nu_mean": [0.1, 0.1], "nu_std": [0.01, 0.01]}
    assert message(profile) == ("profile mine.yaml: field drift.table.g[0] = -1.0 is out of range; "
                                "allowed a number in [0, inf]")


def test_a_list_that_must_ascend_says_so():
    profile = raw()
    profile["drift"]["table"] = {"g": [0.0, 30.0, 25.0], "nu_mean": [0.1] * 3, "nu_std": [0.01] * 3}
    assert message(profile) == ("profile mine.yaml: field drift.table.g = [0.0, 30.0, 25.0] "
                                "must be in ascending order")


@pytest.mark.parametrize("section", ["periphery", "faults"])
def test_a_section_that_is_not_a_mapping(section):
    profile = raw()
    profile[section] = [1, 2]
    assert message(profile) == f"profile mine.yaml: field {section} must be a mapping of fields"


def test_an_unknown_periphery_field_lists_the_known_ones():
    profile = raw()
    profile["periphery"]["adc_bitz"] = 8
    text = message(profile)
    assert text.startswith("profile mine.yaml: field periphery.adc_bitz is not a periphery field (known: ")
    known = re.search(r"\(known: (.*)\)$", text).group(1).split(", ")
    assert known == sorted(known) and {"adc_bits", "dac_bits", "tile_rows", "input_range"} <= set(known)


def test_an_unknown_faults_field_lists_the_known_ones():
    profile = raw()
    profile["faults"] = {"stuck": 0.1}
    assert message(profile) == ("profile mine.yaml: field faults.stuck is not a faults field "
                                "(known: stuck_low, stuck_high, dead_columns)")


@pytest.mark.parametrize("fault", ["stuck_low", "stuck_high"])
def test_a_weight_level_family_has_no_devices_to_be_stuck(fault):
    profile = raw("gaussian")
    profile["faults"] = {fault: 0.1}
    assert message(profile) == ("profile mine.yaml: field faults: model 'gaussian' has no devices to be "
                                "stuck (only dead_columns)")
    profile["faults"] = {"dead_columns": 0.1}
    assert profile_from_dict(profile, "mine.yaml").faults.dead_columns == 0.1


def test_an_unknown_device_lists_the_shipped_profiles():
    with pytest.raises(ImcSimError) as error:
        load_profile("memristor")
    assert str(error.value) == (f"unknown device 'memristor': not a shipped profile "
                                f"({', '.join(shipped_profiles())}) and not a YAML file")


def test_malformed_yaml_gives_the_line_where_the_parser_has_one(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: pcm\nsource: a\n  bad: [\n")
    with pytest.raises(ImcSimError) as error:
        load_profile(str(bad))
    assert str(error.value) == f"profile {bad}: malformed YAML at line 4"
    bad.write_text("name: x\nmodel: \x07\n")  # a reader error (a control character) has no line
    with pytest.raises(ImcSimError) as error:
        load_profile(str(bad))
    assert str(error.value) == f"profile {bad}: malformed YAML"


def test_a_binary_file_is_not_a_text_file(tmp_path):
    binary = tmp_path / "chip.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ImcSimError) as error:
        load_profile(str(binary))
    assert str(error.value) == f"profile {binary}: not a text file"


def test_a_users_file_is_named_in_its_errors(tmp_path):
    mine = tmp_path / "mine.yaml"
    profile = raw()
    profile["conductance"]["g_max"] = 0
    mine.write_text(yaml.safe_dump(profile))
    with pytest.raises(ImcSimError) as error:
        load_profile(str(mine))
    assert str(error.value).startswith(f"profile {mine}: field conductance.g_max = 0 is out of range")


def test_a_section_field_unknown_to_the_model_lists_the_models_fields():
    profile = raw()
    profile["drift"]["nu"] = 0.1
    assert message(profile) == ("profile mine.yaml: field drift.nu is not a field of model 'pcm' "
                                "(known: t0, scale, table)")
    gaussian = raw("gaussian")
    gaussian["drift"] = {"t0": 20.0}  # gaussian weights do not drift: the section has no fields
    assert message(gaussian) == ("profile mine.yaml: field drift.t0 is not a field of model 'gaussian' "
                                 "(known: none)")


def test_a_section_that_is_not_a_mapping_shows_what_it_got():
    profile = raw()
    profile["drift"] = 5
    assert message(profile) == "profile mine.yaml: field drift must be a mapping of fields, got 5"


def test_a_periphery_choice_out_of_its_list_names_the_field():
    profile = raw()
    profile["periphery"]["input_range"] = "sometimes"
    assert message(profile) == ("profile mine.yaml: field periphery.input_range = 'sometimes' is not one "
                                "of dynamic, static")


def test_a_drift_tables_fields_are_checked_by_name_and_length():
    profile = raw()
    table = {"g": [0.0, 25.0], "nu_mean": [0.1, 0.1], "nu_std": [0.01, 0.01]}
    profile["drift"]["table"] = {**table, "nu_max": [0.2, 0.2]}
    assert message(profile) == ("profile mine.yaml: field drift.table.nu_max is not a field of model 'pcm' "
                                "(known: g, nu_mean, nu_std)")
    profile["drift"]["table"] = {key: value for key, value in table.items() if key != "nu_std"}
    assert message(profile) == "profile mine.yaml: field drift.table.nu_std is missing (model 'pcm' needs it)"
    profile["drift"]["table"] = {**table, "g": [0.0, 10.0, 25.0]}
    assert message(profile) == ("profile mine.yaml: field drift.table: lists g, nu_mean, nu_std must have "
                                "equal lengths")


def test_a_flag_is_true_or_false():
    profile = raw("gaussian")
    profile["programming"]["relative"] = "yes"
    assert message(profile) == "profile mine.yaml: field programming.relative = 'yes' must be true or false"
    profile["programming"]["relative"] = True
    assert profile_from_dict(profile).programming["relative"] is True


def test_a_parsed_document_without_a_path_is_named_dict():
    assert message([1, 2], "<dict>") == "profile <dict>: expected a mapping of fields, got list"
    with pytest.raises(ImcSimError, match="^profile <dict>: expected a mapping of fields, got int$"):
        profile_from_dict(5)


def test_the_top_level_fields_are_named_in_their_errors():
    profile = raw()
    profile["colour"] = "blue"
    assert message(profile) == (f"profile mine.yaml: field colour is not a profile field "
                                f"(known: {', '.join(TOP_KEYS)})")
    for key in ("name", "description", "source", "model"):
        for bad in (None, "  ", 3):
            profile = raw()
            profile[key] = bad
            assert message(profile) == f"profile mine.yaml: field {key} is missing or not text"
    profile = raw()
    profile["model"] = "memristor"
    assert message(profile) == (f"profile mine.yaml: field model = 'memristor' is not one of "
                                f"{', '.join(FAMILIES)}")
    profile = raw()
    profile["compensation"] = "sometimes"
    assert message(profile) == ("profile mine.yaml: field compensation = 'sometimes' is not one of "
                                "none, global, per-column")


def test_conductance_checks_across_fields():
    gaussian = raw("gaussian")
    gaussian["conductance"] = {"devices_per_weight": 2}
    assert message(gaussian) == ("profile mine.yaml: field conductance.devices_per_weight = 2: model "
                                 "'gaussian' has no devices")
    gaussian = raw("gaussian")
    gaussian["periphery"].update(ir_drop=1.0, tile_rows=64)
    assert message(gaussian) == ("profile mine.yaml: field periphery.ir_drop: model 'gaussian' has no device "
                                 "conductance (conductance.g_max) to draw the current IR drop needs")
    fefet = raw("fefet")
    fefet["conductance"]["g_min"] = fefet["conductance"]["g_max"]
    g = float(fefet["conductance"]["g_max"])
    assert message(fefet) == f"profile mine.yaml: field conductance.g_min = {g} must be below g_max = {g}"


def test_a_profile_without_compensation_has_none():
    profile = raw()
    profile.pop("compensation")
    assert profile_from_dict(profile).compensation == "none"


def test_a_profile_holds_what_its_file_says():
    chip = raw("pcm-chip")
    profile = profile_from_dict(chip, "chip.yaml")
    assert (profile.name, profile.model, profile.compensation, profile.path) == ("pcm-chip", "pcm", "global",
                                                                                "chip.yaml")
    assert profile.description == chip["description"].strip() and profile.source == chip["source"].strip()
    assert profile.devices_per_weight == 2 and "devices_per_weight" not in profile.conductance
    assert profile.conductance["g_max"] == chip["conductance"]["g_max"]
    assert profile_from_dict(raw("pcm")).devices_per_weight == 1
    assert chip["conductance"]["devices_per_weight"] == 2  # the caller's document is left as it was
    chip["conductance"]["devices_per_weight"] = 0
    assert message(chip).startswith("profile mine.yaml: field conductance.devices_per_weight = 0 is out "
                                    "of range")


def test_one_device_per_weight_and_ir_drop_are_fine_where_there_are_devices():
    gaussian = raw("gaussian")
    gaussian["conductance"] = {"devices_per_weight": 1}
    assert profile_from_dict(gaussian).devices_per_weight == 1
    pcm = raw()
    pcm["periphery"].update(ir_drop=1.0, tile_rows=64)
    assert profile_from_dict(pcm).periphery.ir_drop == 1.0
