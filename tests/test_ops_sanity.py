"""Every op in the catalogue, over every kind of input, through the pipeline to every output format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from imgjobs.catalog import CATALOG, validate_steps
from imgjobs.jobs import MEDIA_TYPES
from tests.images import SAMPLES, encode, scene
from worker import imagefile, pipeline
from worker.ops import OPS

ROOT = Path(__file__).resolve().parent.parent
#: What each op needs beyond its defaults.
REQUIRED = {"resize": {"width": 20}, "rotate": {"angle": 30}, "crop": {"aspect": 1.0}, "pad": {"border": 2}}
#: A chain of every image-changing op, for the determinism checks.
CHAIN = [
    {"op": "resize", "width": 150}, {"op": "rotate", "angle": 12.5}, {"op": "sharpen"}, {"op": "blur", "radius": 1},
    {"op": "denoise"}, {"op": "quantize", "colors": 12, "seed": 3}, {"op": "equalize"}, {"op": "sepia"},
    {"op": "autocontrast", "cutoff": 1}, {"op": "pad", "border": 3, "fill": "#33669980"}, {"op": "palette"},
    {"op": "hash"}, {"op": "stats"},
]


def step(name: str) -> dict:
    """Return a validated step for op `name` with its defaults."""
    return validate_steps([{"op": name, **REQUIRED.get(name, {})}], 20)[0]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Image.Image]:
    """Load every sample once."""
    directory = tmp_path_factory.mktemp("inputs")
    loaded = {}
    for name, (build, _) in SAMPLES.items():
        path = directory / name
        path.write_bytes(build())
        loaded[name] = imagefile.load(path)
    return loaded


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("name", CATALOG)
def test_every_op_runs_on_every_input(inputs, tmp_path, name, sample):
    image = inputs[sample]
    before = image.copy()
    out, analysis = pipeline.run(image, [step(name)])
    assert image.tobytes() == before.tobytes()  # ops are pure: the input is untouched
    if CATALOG[name].analysis:
        assert out is image and json.loads(json.dumps(analysis[0]["output"]))
        return
    assert isinstance(out, Image.Image) and out.mode in imagefile.MODES and out.width >= 1 and out.height >= 1
    if "A" in image.getbands():
        assert "A" in out.getbands(), "transparency must survive every op"
    for fmt in MEDIA_TYPES:
        imagefile.save(out, tmp_path / f"out.{fmt}", fmt, 75 if fmt != "png" else None)
        with Image.open(tmp_path / f"out.{fmt}") as saved:
            assert saved.size == out.size


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (7, 1), (2, 2)])
@pytest.mark.parametrize("mode", imagefile.MODES)
def test_every_op_runs_on_tiny_images(mode, size):
    image = Image.new(mode, size, (128,) * len(mode))
    for name in CATALOG:
        out, _ = pipeline.run(image, [step(name)])
        assert out.width >= 1 and out.height >= 1


def run_chain(source: Path, result: Path, fmt: str) -> dict:
    """Run CHAIN on `source` through the pipeline."""
    spec = {"ops": validate_steps(CHAIN, 20), "format": fmt, "quality": None if fmt == "png" else 80}
    return pipeline.process(source, result, spec)


@pytest.mark.parametrize("fmt", list(MEDIA_TYPES))
def test_same_input_and_steps_give_the_same_bytes(tmp_path, fmt):
    source = tmp_path / "photo.jpg"
    source.write_bytes(encode(scene((320, 240), 9), "JPEG", quality=90))
    first = run_chain(source, tmp_path / f"a.{fmt}", fmt)
    second = run_chain(source, tmp_path / f"b.{fmt}", fmt)
    assert (tmp_path / f"a.{fmt}").read_bytes() == (tmp_path / f"b.{fmt}").read_bytes()
    assert first["analysis"] == second["analysis"]


def test_same_bytes_in_a_fresh_process(tmp_path):
    """Nothing depends on hash seeds, thread timing or warm caches: a new interpreter writes the same file."""
    source = tmp_path / "photo.jpg"
    source.write_bytes(encode(scene((320, 240), 10), "JPEG", quality=90))
    run_chain(source, tmp_path / "here.png", "png")
    code = (
        "import sys; from pathlib import Path; from tests.test_ops_sanity import run_chain;"
        "run_chain(Path(sys.argv[1]), Path(sys.argv[2]), 'png')"
    )
    env = {"PYTHONHASHSEED": "123", "OPENBLAS_NUM_THREADS": "1", "PATH": ""}
    subprocess.run([sys.executable, "-c", code, str(source), str(tmp_path / "there.png")], cwd=ROOT, env=env,
                   check=True)
    assert (tmp_path / "here.png").read_bytes() == (tmp_path / "there.png").read_bytes()


def test_a_chain_of_twenty_steps_runs(tmp_path):
    steps = validate_steps([{"op": "rotate", "angle": 5}, {"op": "thumbnail", "width": 64, "height": 64}] * 10, 20)
    image, analysis = pipeline.run(scene((200, 150)), steps)
    assert image.mode == "RGB" and max(image.size) <= 64 and analysis == []  # white corners keep RGB


def test_ops_report_bad_arguments_as_value_errors():
    for name in ("resize", "crop", "rotate", "flip", "denoise", "quantize", "hash"):
        bad = {"resize": {}, "crop": {"x": 999}, "rotate": {"angle": 1, "filter": "lanczos"},
               "flip": {"direction": "diagonal"}, "denoise": {"size": 2}, "quantize": {"colors": 0},
               "hash": {"hash_size": 1}}[name]
        with pytest.raises(ValueError):
            OPS[name](scene(), **bad)
