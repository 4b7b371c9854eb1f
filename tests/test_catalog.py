"""The op catalogue: declared once, bound once, and every step checked before it is queued."""

from __future__ import annotations

import inspect

import pytest

from imgjobs.catalog import CATALOG, StepError, describe, validate_steps
from worker.ops import DRAFTS, OPS

FAMILIES = {"geometry", "tone", "filters", "ml", "analysis"}


def test_catalogue_and_worker_cover_the_same_names():
    assert set(CATALOG) == set(OPS)


@pytest.mark.parametrize("name", CATALOG)
def test_each_op_takes_exactly_its_declared_parameters(name):
    signature = inspect.signature(OPS[name])
    image, *params = signature.parameters.values()
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)
    assert [p.name for p in params] == [p.name for p in CATALOG[name].params]
    for param in params:  # the function's own default is the catalogue's, so direct calls behave the same
        declared = next(p for p in CATALOG[name].params if p.name == param.name)
        assert declared.required == (param.default is inspect.Parameter.empty)
        if not declared.required:
            assert param.default == declared.default, param.name


@pytest.mark.parametrize("op", describe(), ids=lambda op: op["name"])
def test_each_op_is_described(op):
    assert op["family"] in FAMILIES
    assert op["description"].endswith(".") and len(op["description"]) <= 100
    for param in op["params"]:
        assert param["description"] and param["type"] in ("int", "float", "bool", "choice", "color")


def test_only_ops_that_shrink_decode_jpegs_at_reduced_scale():
    assert set(DRAFTS) == {"resize", "thumbnail"}


def test_analysis_ops_are_flagged():
    assert {name for name, op in CATALOG.items() if op.analysis} == {"palette", "hash", "stats"}


def test_defaults_fill_in():
    [step] = validate_steps([{"op": "sharpen"}], 20)
    assert step == {"op": "sharpen", "radius": 2.0, "amount": 1.5, "threshold": 3}
    [step] = validate_steps([{"op": "rotate", "angle": 30}], 20)
    assert step == {"op": "rotate", "angle": 30.0, "expand": True, "fill": None, "filter": "bicubic"}


@pytest.mark.parametrize(
    ("step", "words"),
    [
        ({"op": "crop"}, "give a box (x, y, width, height) or an aspect"),
        ({"op": "crop", "aspect": 1.5, "width": 10}, "not both"),
        ({"op": "crop", "aspect": 0}, "aspect must be a number from 0.01 to 100"),
        ({"op": "pad"}, "give width, height or border"),
        ({"op": "denoise", "size": 4}, "size must be odd, got 4"),
        ({"op": "rotate"}, "step 1 (rotate): angle is required"),
        ({"op": "rotate", "angle": 10, "filter": "lanczos"}, "filter must be one of nearest, bilinear, bicubic"),
        ({"op": "rotate", "angle": 10, "fill": "red"}, "fill must be a colour like"),
        ({"op": "quantize", "colors": 1}, "colors must be an integer from 2 to 256"),
        ({"op": "edges", "normalize": "yes"}, "normalize must be true or false"),
        ({"op": "hash", "hash_size": 64}, "hash_size must be an integer from 2 to 32"),
        ({"op": "stats", "bins": 10}, "bins is not a parameter of stats (parameters: none)"),
    ],
)
def test_bad_steps_name_the_problem(step, words):
    with pytest.raises(StepError) as caught:
        validate_steps([step], 20)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    "step",
    [
        {"op": "crop", "x": 5},
        {"op": "crop", "width": 10, "height": 10},
        {"op": "crop", "aspect": 1.7778},
        {"op": "pad", "border": 4},
        {"op": "pad", "width": 100},
        {"op": "thumbnail"},
        {"op": "flip", "direction": "vertical"},
        {"op": "denoise", "size": 5},
        {"op": "rotate", "angle": -90.5, "fill": "#ff000080"},
    ],
)
def test_good_steps_pass(step):
    assert validate_steps([step], 20)[0]["op"] == step["op"]
