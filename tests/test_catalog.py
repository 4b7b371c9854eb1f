"""The op catalogue: declared once, bound once, and every step checked before it is queued."""

from __future__ import annotations

import inspect
import re

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


SIZE_CASES = [
    {"op": "resize", "width": 40}, {"op": "resize", "height": 7, "fit": "contain"},
    {"op": "resize", "width": 90, "height": 20, "fit": "cover"},
    {"op": "resize", "width": 5, "height": 99, "fit": "fill"},
    {"op": "thumbnail", "width": 30, "height": 30}, {"op": "crop", "x": 3, "y": 4, "width": 100},
    {"op": "crop", "aspect": 1.7778}, {"op": "flip"}, {"op": "pad", "width": 70, "border": 3},
    *({"op": "rotate", "angle": a, "expand": e} for a in (0, 1, 30, 45, 90, -90, 133.7, 180, 270, 359.9)
      for e in (True, False)),
    *({"op": name} for name in CATALOG if not CATALOG[name].params or name in ("blur", "quantize", "edges")),
]


@pytest.mark.parametrize("source", [(64, 48), (33, 97), (1, 1)])
@pytest.mark.parametrize("step", SIZE_CASES, ids=lambda s: "-".join(map(str, s.values())))
def test_declared_size_is_the_size_the_op_makes(source, step):
    """Web and worker budget with the catalogue's sizes: they must be the ops' own, exactly."""
    from PIL import Image

    from imgjobs.catalog import Budget

    bound = validate_steps([step], 20)
    image = Image.new("RGB", source, "red")
    try:
        output = OPS[step["op"]](image, **{k: v for k, v in bound[0].items() if k != "op"})
    except ValueError as exc:  # a step the image cannot take is refused by the budget too, for the same reason
        with pytest.raises(StepError, match=re.escape(str(exc))):
            Budget(10**9, 10**6).sizes(bound, source)
        return
    expected = image.size if CATALOG[step["op"]].analysis else output.size
    assert Budget(10**9, 10**6).sizes(bound, source) == [expected]


@pytest.mark.parametrize(
    ("steps", "words"),
    [
        ([{"op": "pad", "border": 16384}], "step 1 (pad) would make a 32769x32769 image"),
        ([{"op": "resize", "width": 16384, "height": 16384, "fit": "fill"}],
         "step 1 (resize) would make a 16384x16384"),
        ([{"op": "resize", "width": 7000, "height": 7000, "fit": "fill"}, {"op": "rotate", "angle": 45}],
         "step 2 (rotate) would make a 9900x9900"),
        ([{"op": "grayscale"}, {"op": "pad", "width": 16384, "border": 8}], "step 2 (pad) would make a 16400x17"),
    ],
)
def test_budget_names_the_first_step_over_it(steps, words):
    from imgjobs.catalog import Budget, TooManyPixels

    with pytest.raises(TooManyPixels, match=re.escape(words)) as caught:
        Budget(50_000_000, 16384).sizes(validate_steps(steps, 20), (1, 1))
    assert caught.value.step == len(steps)
