"""Every list of allowed values has one home (fashion_rembg.choices or the registry that builds the
things); the JSON schema's enums, the config's axes and the torch-side registries must agree with it."""
import re
from pathlib import Path

import pytest
import yaml

from fashion_rembg import choices
from fashion_rembg.config import AXES
from fashion_rembg.datasets.own import KINDS
from fashion_rembg.errors import ConfigError
from fashion_rembg.saliency.registry import CLOTH_CATEGORIES, CUSTOM_SESSIONS

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml").read_text())
DEFS = SCHEMA["definitions"]
PROPS = SCHEMA["properties"]


def axis_enum(definition: str) -> list:
    """The enum of a `<name>_axis` definition: one value or a list of values, both with the same enum."""
    single, many = DEFS[definition]["anyOf"]
    assert single["enum"] == many["items"]["enum"], f"{definition}: single and list enums differ"
    return single["enum"]


@pytest.mark.parametrize(
    ("definition", "allowed"),
    [
        ("variant_axis", choices.VARIANTS),
        ("init_axis", choices.INITS),
        ("optimizer_axis", choices.OPTIMIZERS),
        ("schedule_axis", choices.SCHEDULES),
    ],
)
def test_schema_axis_enums_are_the_choices(definition, allowed):
    assert axis_enum(definition) == list(allowed)


def test_schema_augment_pattern_is_the_choices():
    """The schema's pattern admits the registry's names and RandAugment strengths; the ranges are
    checked (with a clear message) by choices.augment_settings."""
    for definition in DEFS["augment_axis"]["anyOf"]:
        pattern = re.compile(definition.get("pattern") or definition["items"]["pattern"])
        for name in (*choices.AUGMENTATIONS, "randaugment-n1-m9", "randaugment-n3", "randaugment-m5"):
            assert pattern.search(name), name
            choices.augment_settings(name)
        for name in ("randaug", "flip-n1", "randaugment-m5-n1", "RandAugment", "randaugment-n"):
            assert not pattern.search(name), name
            with pytest.raises(ConfigError):
                choices.augment_settings(name)


def test_schema_enums_of_names_and_sections():
    assert DEFS["test_on"]["items"]["enum"] == list(choices.VARIANTS)
    assert set(DEFS["cls_axis_names"]["enum"]) == set(AXES["classification"])
    assert set(DEFS["seg_axis_names"]["enum"]) == set(AXES["segmentation"])
    assert PROPS["saliency"]["properties"]["fill"]["enum"] == list(choices.FILLS)
    control_set = PROPS["controls"]["properties"]["sets"]["additionalProperties"]["properties"]
    assert control_set["fill"]["enum"] == list(choices.FILLS)
    custom = PROPS["saliency"]["properties"]["custom_models"]["additionalProperties"]["properties"]
    assert custom["contract"]["enum"] == list(CUSTOM_SESSIONS)
    mask_set = PROPS["saliency"]["properties"]["mask_sets"]["additionalProperties"]["properties"]
    assert mask_set["cloth_category"]["enum"] == [*CLOTH_CATEGORIES, None]
    assert set(DEFS["own_dataset"]["properties"]["kind"]["enum"]) == set(KINDS)
    assert set(PROPS) >= set(choices.TASKS) and set(choices.BUILTIN_DATASETS) <= set(PROPS["datasets"]["properties"])


@pytest.mark.parametrize("task", choices.TASKS)
def test_schema_grid_defaults_are_the_config_defaults(task):
    grid = PROPS[task]["properties"]["grid"]["properties"]
    assert set(grid) == set(AXES[task])
    for axis, spec in AXES[task].items():
        assert grid[axis].get("default") == spec.default, f"{task}.grid.{axis}"


def test_torch_side_registries_are_the_choices():
    from fashion_rembg.models.classifiers import CLASSIFIERS
    from fashion_rembg.models.segmenters import SEGMENTERS
    from fashion_rembg.saliency.composite import FILLS
    from fashion_rembg.training.augment import AUGMENTATIONS

    assert tuple(AUGMENTATIONS) == choices.AUGMENTATIONS
    assert tuple(FILLS) == choices.FILLS
    assert tuple(SEGMENTERS) == choices.SEGMENTERS
    assert sorted(CLASSIFIERS) == sorted(choices.CLASSIFIER_ARCHS)
    assert set(choices.BN_TOGGLE_ARCHS) <= set(CLASSIFIERS)
