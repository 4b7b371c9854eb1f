"""Every op on a 12-megapixel photo, against the closest reference library, measured side by side in one run.

    python -m bench.ops          (or `make bench`)

For a generated, seeded, photo-like 4000x3000 JPEG, each op and its reference (Pillow's
own filter, scipy, scikit-image, scikit-learn or imagehash) run interleaved, ROUNDS
times; the table shows medians, their ratio, the target and whether it is met. Ops run
on the decoded image, except resize and thumbnail, which include the decode they shrink
(JPEG draft). A job's peak memory is measured in a fresh process per op, against the
decoded bitmap (Pillow holds RGB in 4 bytes a pixel). Last, whole jobs through the
pipeline (decode, steps, encode) are compared with the bare decode of the same file.
Resampling (resize, thumbnail) runs on up to 4 threads, on the CPUs that are idle, so its figures
depend on the CPUs and on what else runs.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from bench.images import jpeg
from imgjobs.catalog import validate_steps
from worker import imagefile, pipeline
from worker.ops import OPS, geometry, ml

#: Even, so each side runs first equally often (the first of a pair pays for fresh memory pages).
ROUNDS = 6
SIZE = (4000, 3000)
TARGET = 3.0
SEPIA = (0.393, 0.769, 0.189, 0, 0.349, 0.686, 0.168, 0, 0.272, 0.534, 0.131, 0)


@dataclass
class Case:
    """One op with its step parameters, its reference and its target ratio."""

    op: str
    params: dict[str, Any]
    reference: str
    run_reference: Callable[[], object]
    target: float = TARGET
    limit_ms: float | None = None  # an absolute target too
    run_op: Callable[[], object] | None = None  # default: the op on the decoded image
    samples: dict[str, list[float]] = field(default_factory=lambda: {"op": [], "reference": []})


def decode(path: Path, scale: int = 1) -> Image.Image:
    """Decode a JPEG as any program would, at 1/scale of its size (the floor for any job)."""
    with Image.open(path) as image:
        if scale > 1:
            image.draft(None, (image.width // scale, image.height // scale))
        image.load()
        return image


def job(path: Path, steps: list[dict[str, Any]]) -> Callable[[], object]:
    """Return a call that decodes `path` as the pipeline does and runs `steps`, without encoding."""
    bound = validate_steps(steps, 20)
    return lambda: pipeline.run(imagefile.load(path, pipeline.shrink(bound)), bound)


def kmeans_reference(image: Image.Image, k: int) -> np.ndarray:
    """Fit scikit-learn's KMeans on the same size of pixel sample, then label every pixel."""
    from sklearn.cluster import KMeans

    pixels = np.asarray(image).reshape(-1, 3)
    sample = pixels[np.random.default_rng(0).choice(len(pixels), ml.SAMPLE, replace=False)].astype(np.float64)
    model = KMeans(n_clusters=k, n_init=1, random_state=0).fit(sample)
    return model.predict(pixels.astype(np.float32).astype(np.float64))


def stats_reference(image: Image.Image) -> dict[str, Any]:
    """Compute the stats op's numbers with plain numpy and scipy."""
    from scipy import ndimage

    pixels = np.asarray(image).reshape(-1, 3)
    gray = np.asarray(image.convert("L"))
    histogram = np.bincount(gray.ravel(), minlength=256) / gray.size
    nonzero = histogram[histogram > 0]
    return {
        "mean": pixels.mean(axis=0), "std": pixels.std(axis=0),
        "histograms": [np.bincount(pixels[:, i], minlength=256) for i in range(3)],
        "entropy": -(nonzero * np.log2(nonzero)).sum(), "sharpness": ndimage.laplace(gray.astype(float)).var(),
    }


def cases(path: Path, image: Image.Image) -> list[Case]:
    """Return every op's benchmark case on the decoded `image` of the JPEG at `path`."""
    # the reference libraries load here, so the memory probe's fresh processes hold only the worker's code
    import imagehash
    from scipy import ndimage
    from skimage import exposure

    gray = image.convert("L")
    sobel = lambda: np.hypot(*(ndimage.sobel(np.asarray(image.convert("L"), np.float32), a) for a in (0, 1)))  # noqa: E731
    return [
        Case("resize", {"width": 1024}, "half-size decode", lambda: decode(path, 2), 1.5,
             run_op=job(path, [{"op": "resize", "width": 1024}])),
        Case("thumbnail", {}, "Pillow thumbnail (with draft)", lambda: pillow_thumbnail(path),
             run_op=job(path, [{"op": "thumbnail"}])),
        Case("crop", {"aspect": 1.0}, "Pillow crop", lambda: image.crop((500, 0, 3500, 3000))),
        Case("rotate", {"angle": 30}, "Pillow rotate", lambda: image.rotate(30, Image.Resampling.BICUBIC, expand=True)),
        Case("flip", {}, "Pillow transpose", lambda: image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
        Case("pad", {"border": 50, "fill": "#ffffff"}, "ImageOps.expand", lambda: ImageOps.expand(image, 50, "white")),
        Case("grayscale", {}, "Pillow convert L", lambda: image.convert("L")),
        Case("invert", {}, "ImageOps.invert", lambda: ImageOps.invert(image)),
        Case("autocontrast", {"cutoff": 1}, "ImageOps.autocontrast", lambda: ImageOps.autocontrast(image, 1)),
        Case("equalize", {}, "ImageOps.equalize", lambda: ImageOps.equalize(image)),
        Case("brightness", {}, "ImageEnhance.Brightness", lambda: ImageEnhance.Brightness(image).enhance(1.2)),
        Case("contrast", {}, "ImageEnhance.Contrast", lambda: ImageEnhance.Contrast(image).enhance(1.2)),
        Case("gamma", {}, "skimage adjust_gamma", lambda: exposure.adjust_gamma(np.asarray(image), 0.8)),
        Case("posterize", {}, "ImageOps.posterize", lambda: ImageOps.posterize(image, 4)),
        Case("sepia", {}, "Pillow convert matrix", lambda: image.convert("RGB", SEPIA)),
        Case("blur", {}, "Pillow GaussianBlur", lambda: image.filter(ImageFilter.GaussianBlur(2))),
        Case("sharpen", {}, "Pillow UnsharpMask", lambda: image.filter(ImageFilter.UnsharpMask(2, 150, 3))),
        Case("edges", {}, "scipy.ndimage.sobel", sobel, 1.5),
        Case("denoise", {}, "Pillow MedianFilter", lambda: image.filter(ImageFilter.MedianFilter(3))),
        Case("quantize", {"colors": 8}, "sklearn KMeans (sample)", lambda: kmeans_reference(image, 8),
             limit_ms=1000),
        Case("palette", {}, "sklearn KMeans (sample)", lambda: kmeans_reference(image, 5)),
        Case("hash", {}, "imagehash a+d+pHash",
             lambda: (imagehash.average_hash(gray), imagehash.dhash(gray), imagehash.phash(gray))),
        Case("stats", {}, "numpy + scipy", lambda: stats_reference(image)),
    ]


def pillow_thumbnail(path: Path) -> Image.Image:
    """Make a 256-pixel thumbnail the way Pillow's docs suggest (draft, then thumbnail)."""
    with Image.open(path) as image:
        image.thumbnail((256, 256))
        return image


def timed(call: Callable[[], object]) -> float:
    """Return how long one call takes, in seconds."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(all_cases: list[Case], image: Image.Image) -> None:
    """Run every case and its reference ROUNDS times, interleaved, alternating which goes first."""
    for case in all_cases:  # warm up: imports, caches, BLAS threads
        op_call(case, image)()
        case.run_reference()
    for round_number in range(ROUNDS):
        for case in all_cases:
            pair = [("op", op_call(case, image)), ("reference", case.run_reference)]
            for kind, call in pair if round_number % 2 == 0 else pair[::-1]:
                case.samples[kind].append(timed(call))


def op_call(case: Case, image: Image.Image) -> Callable[[], object]:
    """Return the call that runs the case's op."""
    if case.run_op is not None:
        return case.run_op
    params = {k: v for k, v in validate_steps([{"op": case.op, **case.params}], 20)[0].items() if k != "op"}
    return lambda: OPS[case.op](image, **params)


def peak_memory(path: Path, steps: list[dict[str, Any]]) -> tuple[float, float]:
    """Return a job's peak memory and its result's bitmap size (bytes), from a fresh process."""
    out = subprocess.run([sys.executable, "-m", "bench.ops", "--memory", str(path), json.dumps(steps)],
                         capture_output=True, text=True, check=True)
    peak, result = out.stdout.split()
    return float(peak), float(result)


def memory_child(path: Path, steps: list[dict[str, Any]]) -> None:
    """In this fresh process: warm up on a tiny image, then print a job's peak memory above the baseline."""
    bound = validate_steps(steps, 20)
    pipeline.run(Image.new("RGB", (64, 48), "gray"), bound)  # imports and first-call setup stay out of the peak
    with tempfile.TemporaryDirectory() as directory:
        Path("/proc/self/clear_refs").write_text("5")  # restart the peak from here (Linux 4.0+)
        before = status("VmRSS")
        result = pipeline.process(path, Path(directory) / "out.jpeg", {"ops": bound, "format": "jpeg", "quality": 85})
        print(status("VmHWM") - before, result["width"] * result["height"] * 4)  # Pillow: 4 bytes a pixel


def status(field: str) -> int:
    """Return a memory figure of this process from /proc/self/status, in bytes.

    Not getrusage's ru_maxrss: Linux carries the parent's peak into a child across exec.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def pipelines(path: Path) -> list[tuple[str, float, str, float]]:
    """Time whole jobs (decode, steps, encode to JPEG) against the bare decode they cannot beat."""
    resize = [{"op": "resize", "width": 1024}]
    chains = [  # label, steps, JPEG draft on, the floor's scale
        ("no steps (decode + encode)", [], True, 1),
        ("resize 1024", resize, True, 2),
        ("resize 1024 without draft", resize, False, 2),
        ("resize 1024 + sharpen + stats", [*resize, {"op": "sharpen"}, {"op": "stats"}], True, 2),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for label, steps, draft, scale in chains:
            run = whole_job(path, steps, Path(directory) / "out.jpeg", draft)
            bare = lambda scale=scale: decode(path, scale)  # noqa: E731
            floor = "full decode" if scale == 1 else "half-size decode"
            run(), bare()
            ours, reference = [], []
            for _ in range(ROUNDS):
                ours.append(timed(run))
                reference.append(timed(bare))
            rows.append((label, statistics.median(ours), floor, statistics.median(reference)))
    return rows


def whole_job(path: Path, steps: list[dict[str, Any]], result: Path, draft: bool = True) -> Callable[[], object]:
    """Return a call that runs a job as the worker does; without `draft`, the JPEG decodes at full size."""
    spec = {"ops": validate_steps(steps, 20), "format": "jpeg", "quality": 85}
    if draft:
        return lambda: pipeline.process(path, result, spec)

    def undrafted() -> object:
        image, _ = pipeline.run(imagefile.load(path), spec["ops"])
        return imagefile.save(image, result, "jpeg", 85)
    return undrafted


def report(all_cases: list[Case], memory: dict[str, tuple[float, float]], bitmap: int, rows: list,
           header: str) -> None:
    """Print the tables."""
    print(header)
    print(f"{'op':<13}{'ms':>8}  {'reference':<30}{'ref ms':>8}{'ratio':>7}{'target':>15}{'':<6}{'peak mem':>9}")
    for case in all_cases:
        ours, ref = statistics.median(case.samples["op"]) * 1000, statistics.median(case.samples["reference"]) * 1000
        ratio = ours / ref
        target = f"{case.target:g}x" + (f", <{case.limit_ms:g} ms" if case.limit_ms else "")
        met = ratio <= case.target and (case.limit_ms is None or ours < case.limit_ms)
        peak, result = memory[case.op]
        grown = f" ({peak / max(bitmap, result):.1f}x out)" if result > bitmap else ""
        print(f"{case.op:<13}{ours:8.1f}  {case.reference:<30}{ref:8.1f}{ratio:7.2f}{target:>15}  "
              f"{'OK' if met else 'over':<4}{peak / bitmap:8.2f}x{' over' if peak > 3 * bitmap else ''}{grown}")
    print(f"\npeak mem: a whole job's peak (decode, op, JPEG encode) above its baseline, over the decoded bitmap "
          f"({bitmap / 2**20:.0f} MiB); (.. out): over the result's bitmap, where that is bigger")
    print(f"\n{'pipeline (to JPEG)':<32}{'ms':>8}  {'floor':<18}{'ms':>8}{'ratio':>7}")
    for label, ours, floor, reference in rows:
        print(f"{label:<32}{ours * 1000:8.1f}  {floor:<18}{reference * 1000:8.1f}{ours / reference:7.2f}")


def main() -> None:
    """Generate the photo, measure every op and its reference, and print the tables."""
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "photo.jpg"
        path.write_bytes(jpeg(SIZE, seed=0, quality=90))
        image = decode(path)
        bitmap = image.width * image.height * 4
        all_cases = cases(path, image)
        measure(all_cases, image)
        memory = {case.op: peak_memory(path, [{"op": case.op, **case.params}]) for case in all_cases}
        rows = pipelines(path)
        header = (f"{SIZE[0]}x{SIZE[1]} photo-like JPEG ({path.stat().st_size / 1e6:.1f} MB), "
                  f"median of {ROUNDS} interleaved runs, resampling on {geometry.thread_count()} threads, "
                  f"{time.strftime('%Y-%m-%d')}")
        report(all_cases, memory, bitmap, rows, header)
    print(f"\n(bench ran {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--memory"]:
        memory_child(Path(sys.argv[2]), json.loads(sys.argv[3]))
    else:
        main()
