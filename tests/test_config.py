"""poetml.config: YAML run configurations -> frozen dataclasses."""

from __future__ import annotations

import dataclasses
import typing
from typing import Literal

import pytest

from poetml import config
from poetml.config import ReadingConfig, RunConfig, from_mapping, load, load_yaml, parse, to_mapping
from poetml.exceptions import ConfigError
from poetml.features import FeatureSpec
from poetml.images import ImageSpec
from poetml.selection import MuonSelection, Selection


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


# --------------------------------------------------------------------------------------
# from_mapping
# --------------------------------------------------------------------------------------


def test_builds_nested_frozen_dataclasses() -> None:
    spec = from_mapping(
        ImageSpec, {"n_eta": 16, "selection": {"muon": {"min_pt": 20, "tight_id": False}}}
    )
    assert isinstance(spec, ImageSpec)
    assert spec.n_eta == 16
    assert spec.n_phi == ImageSpec().n_phi  # untouched fields keep their defaults
    assert isinstance(spec.selection, Selection)
    assert spec.selection.muon == MuonSelection(min_pt=20.0, tight_id=False)
    assert spec.selection.jet == Selection().jet
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.n_eta = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.selection.muon.min_pt = 1.0  # type: ignore[misc]


def test_empty_or_none_gives_defaults() -> None:
    assert from_mapping(ImageSpec, {}) == ImageSpec()
    assert from_mapping(ImageSpec, None) == ImageSpec()


def test_lists_become_tuples() -> None:
    images = from_mapping(ImageSpec, {"channels": ["muon", "jet"]})
    assert images.channels == ("muon", "jet")
    assert type(images.channels) is tuple
    features = from_mapping(FeatureSpec, {"slots": [["met", 1], ["muon", 2]], "fields": ["pt"]})
    assert features.slots == (("met", 1), ("muon", 2))
    assert all(type(s) is tuple for s in features.slots)
    assert features.fields == ("pt",)
    hash(features.slots)  # hashable, as a frozen spec should be


def test_int_accepted_for_float_and_converted() -> None:
    spec = from_mapping(ImageSpec, {"eta_min": -2, "eta_max": 2})
    assert spec.eta_min == -2.0
    assert type(spec.eta_min) is float


def test_optional_fields() -> None:
    assert from_mapping(ImageSpec, {"saturate_bits": None}).saturate_bits is None
    assert from_mapping(ImageSpec, {"saturate_bits": 8}).saturate_bits == 8
    assert from_mapping(MuonSelection, {"max_iso": None}).max_iso is None
    assert from_mapping(MuonSelection, {"max_iso": 1}).max_iso == 1.0


def test_existing_instance_is_kept() -> None:
    sel = Selection.none()
    assert from_mapping(ImageSpec, {"selection": sel}).selection is sel


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ConfigError) as info:
        from_mapping(ImageSpec, {"n_etaa": 3})
    msg = str(info.value)
    assert "ImageSpec: unknown key 'n_etaa'" in msg
    assert "valid keys: " + ", ".join(_field_names(ImageSpec)) in msg


def test_unknown_keys_plural_and_nested_path() -> None:
    with pytest.raises(ConfigError) as info:
        from_mapping(ImageSpec, {"selection": {"muon": {"minpt": 1, "iso": 0.1}}})
    msg = str(info.value)
    assert "ImageSpec.selection.muon: unknown keys 'minpt', 'iso'" in msg
    assert "valid keys: " + ", ".join(_field_names(MuonSelection)) in msg


@pytest.mark.parametrize(
    ("data", "path", "expect"),
    [
        ({"n_eta": "32"}, "images.n_eta", "expected an integer, got '32'"),
        ({"n_eta": True}, "images.n_eta", "expected an integer, got True"),
        ({"n_eta": 3.5}, "images.n_eta", "expected an integer, got 3.5"),
        ({"eta_min": "-2.5"}, "images.eta_min", "expected a number"),
        ({"eta_min": False}, "images.eta_min", "expected a number"),
        ({"log1p": "yes"}, "images.log1p", "expected true or false, got 'yes'"),
        ({"log1p": 1}, "images.log1p", "expected true or false, got 1"),
        ({"mode": 3}, "images.mode", "expected a string"),
        ({"channels": "muon"}, "images.channels", "expected a list, got 'muon'"),
        ({"channels": ["muon", 2]}, "images.channels[1]", "expected a string, got 2"),
        ({"saturate_bits": 8.5}, "images.saturate_bits", "8.5 is not a valid"),
        ({"selection": [1]}, "images.selection", "expected a mapping of Selection options"),
        (
            {"selection": {"jet": {"min_pt": "high"}}},
            "images.selection.jet.min_pt",
            "expected a number, got 'high'",
        ),
    ],
)
def test_wrong_type_names_the_path(data, path, expect) -> None:
    with pytest.raises(ConfigError) as info:
        parse({"images": data})
    msg = str(info.value)
    assert f"config: {path}:" in msg
    assert expect in msg


def test_wrong_tuple_length() -> None:
    with pytest.raises(ConfigError, match=r"features\.slots\[0\]: expected 2 items"):
        parse({"features": {"slots": [["met", 1, 2]]}})
    with pytest.raises(ConfigError, match=r"features\.slots\[1\]\[1\]: expected an integer"):
        parse({"features": {"slots": [["met", 1], ["muon", "four"]]}})


def test_dataclass_validation_becomes_config_error() -> None:
    """ValueError/TypeError from a spec's own checks surface as ConfigError with the path,
    down to the key that is wrong."""
    with pytest.raises(ConfigError, match=r"^config: images\.mode: unknown image mode 'fancy'"):
        parse({"images": {"mode": "fancy"}})


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"ImageSpec: expected a mapping, got \[1, 2\]"):
        from_mapping(ImageSpec, [1, 2])  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class _Typed:
    """Exercises the conversions the core specs do not use (yet)."""

    kind: Literal["a", "b"] = "a"
    weights: dict[str, float] = dataclasses.field(default_factory=dict)
    sizes: tuple[int, ...] | None = None


def test_literal_dict_and_optional_tuple() -> None:
    t = from_mapping(_Typed, {"kind": "b", "weights": {"x": 1, "y": 0.5}, "sizes": [1, 2]})
    assert t == _Typed("b", {"x": 1.0, "y": 0.5}, (1, 2))
    assert type(t.weights["x"]) is float
    with pytest.raises(ConfigError, match=r"_Typed\.kind: 'c' is not one of 'a', 'b'"):
        from_mapping(_Typed, {"kind": "c"})
    with pytest.raises(ConfigError, match=r"_Typed\.weights\.y: expected a number"):
        from_mapping(_Typed, {"weights": {"y": "big"}})
    with pytest.raises(ConfigError, match=r"_Typed\.sizes: .* is not a valid"):
        from_mapping(_Typed, {"sizes": "12"})


@pytest.mark.parametrize(
    "spec",
    [
        ImageSpec(),
        ImageSpec(n_eta=8, channels=("jet", "met"), saturate_bits=10, selection=Selection.none()),
        FeatureSpec(),
        FeatureSpec(slots=(("muon", 2), ("jet", 3)), event_quantities=("ht", "m_jj")),
    ],
)
def test_to_mapping_round_trip(spec) -> None:
    plain = to_mapping(spec)
    assert isinstance(plain, dict)
    assert from_mapping(type(spec), plain) == spec


# --------------------------------------------------------------------------------------
# parse / RunConfig: sections and the top-level selection
# --------------------------------------------------------------------------------------


def test_unknown_section_lists_valid_sections() -> None:
    with pytest.raises(ConfigError) as info:
        parse({"imagez": {}})
    msg = str(info.value)
    assert "config: unknown section 'imagez'; valid sections:" in msg
    for name in ("reading", "selection", "images", "features"):
        assert name in msg


def test_sections_are_built() -> None:
    cfg = parse({"reading": {"step_size": 10}, "images": {"n_eta": 8}})
    assert cfg.reading == ReadingConfig(step_size=10)
    assert cfg.images.n_eta == 8
    assert cfg.path is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.images = ImageSpec()  # type: ignore[misc]


def test_missing_known_section_gives_defaults_and_unknown_raises() -> None:
    cfg = parse({})
    assert cfg == RunConfig()
    assert cfg.images == ImageSpec()
    assert cfg.reading == ReadingConfig()
    with pytest.raises(AttributeError):
        cfg.nope  # type: ignore[attr-defined]  # noqa: B018


def test_top_level_selection_propagates() -> None:
    sel = {"muon": {"min_pt": 25.0}, "jet": {"btag_threshold": 0.9}}
    cfg = parse({"selection": sel, "images": {"n_eta": 8}})
    expected = from_mapping(Selection, sel)
    assert cfg.selection == expected
    assert cfg.images.selection == expected
    assert cfg.images.n_eta == 8
    # features is not in the file, but still gets the top-level selection
    assert cfg.features.selection == expected
    assert cfg.features.slots == FeatureSpec().slots


def test_section_selection_wins_over_top_level() -> None:
    cfg = parse(
        {
            "selection": {"muon": {"min_pt": 25.0}},
            "images": {"selection": {"muon": {"min_pt": 5.0}}},
        }
    )
    assert cfg.images.selection.muon.min_pt == 5.0
    assert cfg.features.selection.muon.min_pt == 25.0


def test_top_level_selection_reaches_empty_section() -> None:
    """``images:`` with no body (YAML null) does not give its own selection."""
    cfg = parse({"selection": {"muon": {"min_pt": 25.0}}, "images": None})
    assert cfg.images.selection.muon.min_pt == 25.0


def test_invalid_top_level_selection_names_selection() -> None:
    with pytest.raises(ConfigError, match=r"config: selection\.muon\.min_pt: expected a number"):
        parse({"selection": {"muon": {"min_pt": "x"}}, "images": {}})


def test_runconfig_fields_are_the_typed_sections() -> None:
    """RunConfig has exactly the valid sections as fields, each typed by its own dataclass
    (no registry: the section list is the class)."""
    hints = typing.get_type_hints(RunConfig)
    names = [f.name for f in dataclasses.fields(RunConfig) if f.name != "path"]
    assert tuple(names) == config.section_names()
    from poetml import pipeline

    assert tuple(pipeline.STAGES) == config.STAGE_NAMES
    assert names == [
        "reading",
        "selection",
        "images",
        "features",
        "dataset",
        "model",
        "training",
        "evaluation",
        "run",
        "firmware",
    ]
    with pytest.raises(ConfigError) as info:
        parse({"imagez": {}})
    assert f"valid sections: {', '.join(names)}" in str(info.value)
    defaults = RunConfig()
    for name in names:
        cls = hints[name]
        assert isinstance(cls, type), name
        assert dataclasses.is_dataclass(cls), name
        assert type(getattr(defaults, name)) is cls, name
        assert getattr(defaults, name) == cls()


# --------------------------------------------------------------------------------------
# load / load_yaml
# --------------------------------------------------------------------------------------

YAML = """\
reading:
  step_size: 5000
selection:
  muon:
    min_pt: 20
    max_iso: null
images:
  n_eta: 16
  n_phi: 16
  channels: [muon, jet]
features:
  slots:
    - [met, 1]
    - [muon, 2]
  event_quantities: [ht]
"""


def test_load(tmp_path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(YAML)
    cfg = load(path)
    assert cfg.path == path
    assert cfg.reading.step_size == 5000
    assert cfg.images.shape == (16, 16, 2)
    assert cfg.images.channels == ("muon", "jet")
    assert cfg.features.slots == (("met", 1), ("muon", 2))
    assert cfg.features.event_quantities == ("ht",)
    for section in ("images", "features"):
        assert getattr(cfg, section).selection.muon == MuonSelection(min_pt=20.0, max_iso=None)
    assert load(str(path)) == cfg


def test_load_empty_file(tmp_path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    cfg = load(path)
    assert dataclasses.replace(cfg, path=None) == RunConfig()
    assert cfg.images == ImageSpec()


def test_load_missing_file_names_it(tmp_path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=rf"cannot read configuration {path}"):
        load(path)


def test_load_directory_names_it(tmp_path) -> None:
    with pytest.raises(ConfigError, match=rf"cannot read configuration {tmp_path}"):
        load_yaml(tmp_path)


def test_invalid_yaml_names_the_file(tmp_path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("images:\n  channels: [muon, jet\n")
    with pytest.raises(ConfigError, match=rf"^{path}: not valid YAML"):
        load(path)


def test_top_level_must_be_a_mapping(tmp_path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- images\n- features\n")
    with pytest.raises(ConfigError, match=rf"^{path}: the top level must be a mapping"):
        load(path)


def test_error_inside_file_names_file_and_path(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("images:\n  n_eta: many\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value).startswith(f"{path}: images.n_eta: expected an integer, got 'many'")


def test_unknown_key_in_file(tmp_path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("features:\n  slot: [[met, 1]]\n")
    with pytest.raises(ConfigError, match=r"features: unknown key 'slot'; valid keys: slots, "):
        load(path)
