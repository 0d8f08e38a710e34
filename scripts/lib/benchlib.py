"""What the benchmark scripts share: where things are, the model manifests,
the fixed numeric input of ../shared/README.md, the 12-megapixel test photo,
running the Rust `bench` subcommand, and small statistics and table helpers.
"""

import json
import math
import os
import platform
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(os.environ.get("BENCH_ROOT") or Path(__file__).resolve().parents[2])
# The script's name in messages (each script's main sets it).
PROG = Path(sys.argv[0]).name


def die(message):
    print(f"{PROG}: {message}", file=sys.stderr)
    sys.exit(2)


def shared_dir():
    """The shared test data: ../shared beside the repository, or
    $IMAGENET_CLASSROOM_SHARED, as the tests find it."""
    folder = Path(os.environ.get("IMAGENET_CLASSROOM_SHARED") or ROOT.parent / "shared")
    if not (folder / "README.md").is_file() or not (folder / "models").is_dir():
        die(
            f"the shared test data is missing: looked for {folder} (set "
            "IMAGENET_CLASSROOM_SHARED to the folder holding README.md, models/ and images/)"
        )
    return folder


def shared_photo(name):
    path = shared_dir() / "images" / name
    if not path.is_file():
        die(f"shared photo missing: looked for {path}")
    return path


def binary():
    path = os.environ.get("BENCH_BIN") or ROOT / "target" / "release" / "imagenet-classroom"
    if not Path(path).is_file():
        die(f"{path} does not exist: run `cargo build --release` first")
    return str(path)


@dataclass
class Model:
    """What the scripts need of a model manifest in models/."""

    name: str
    manifest: Path
    onnx: Path
    input_name: str | None
    input_size: int
    logits: bool


def load_model(name_or_path):
    """Reads `models/NAME.toml` (or a manifest path) the way the Rust side
    does: the ONNX path is relative to the manifest's folder."""
    path = Path(name_or_path)
    if not path.suffix == ".toml":
        path = ROOT / "models" / f"{name_or_path}.toml"
    if not path.is_file():
        die(f"model manifest {path} does not exist")
    with open(path, "rb") as f:
        manifest = tomllib.load(f)
    onnx = (path.parent / manifest["onnx"]).resolve()
    if not onnx.is_file():
        hint = manifest.get("fetch_hint", "check the manifest's `onnx` key")
        die(f"model file {onnx} (from {path}) does not exist: {hint}")
    return Model(
        name=manifest["name"],
        manifest=path,
        onnx=onnx,
        input_name=manifest.get("input_name"),
        input_size=int(manifest.get("input_size", 224)),
        logits=manifest.get("output", "probabilities") == "logits",
    )


def fixed_input(size=224):
    """x[0][c][y][x] = ((c*7 + y*3 + x) mod 17) / 17 - 0.5 (../shared/README.md)."""
    import numpy as np

    c, y, x = np.meshgrid(np.arange(3), np.arange(size), np.arange(size), indexing="ij")
    values = ((c * 7 + y * 3 + x) % 17).astype(np.float32) / np.float32(17) - np.float32(0.5)
    return values[np.newaxis].astype(np.float32)


def run_rust_bench(model, threads, runs, images=(), fixed=False):
    """Runs `imagenet-classroom bench --json` once and returns its reports,
    one dict per image (or for the fixed input)."""
    command = [binary(), "bench", "--model", str(model.manifest), "--threads", str(threads),
               "--runs", str(runs), "--json"]
    if fixed:
        command.append("--fixed-input")
    command += [str(image) for image in images]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        die(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr.strip()}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def median(values):
    values = sorted(values)
    n = len(values)
    if n == 0:
        return math.nan
    middle = n // 2
    return values[middle] if n % 2 else (values[middle - 1] + values[middle]) / 2


def percentile(values, p):
    """Nearest-rank percentile: the smallest value with at least p% at or below it."""
    values = sorted(values)
    if not values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(values)))
    return values[rank - 1]


def markdown_table(header, rows, right=()):
    """A Markdown table padded to line up in a terminal too; columns whose
    index is in `right` are right-aligned."""
    cells = [list(map(str, header))] + [list(map(str, row)) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row):
        padded = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "| " + " | ".join(
        "-" * (w - 1) + ":" if i in right else "-" * w for i, w in enumerate(widths)
    ) + " |"
    return "\n".join([line(cells[0]), rule] + [line(row) for row in cells[1:]])


def machine_summary():
    """One line saying what the figures were measured on, and how busy it was."""
    cpu = platform.processor() or platform.machine()
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                cpu = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return (f"{cpu}, {os.cpu_count()} cores, load average {load}; "
            f"imagenet-classroom {commit}{' (modified)' if dirty else ''}")


def warn_if_busy():
    """Says so when other processes already keep the cores busy: the figures
    then measure the neighbours as much as the code."""
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"note: load average {load:.2f} before starting; timings will be noisy",
              file=sys.stderr)


# The 12-megapixel test photo: bumping this re-creates the cached file.
BIG_PHOTO_VERSION = 1


def big_photo(source_name="cat.jpg"):
    """A 12-megapixel phone-like JPEG made from a shared photo, cached under
    target/bench-data/. Phones store 4000x3000 sensor pixels with an EXIF
    orientation tag rather than rotating the pixels, and their files weigh
    3-5 MB because the sensor adds grain; a plain upscale would be a smooth,
    small file that decodes faster than a real photo. So: upscale to 4:3,
    add seeded grain, store it rotated with orientation 6 (the decoder must
    turn it back upright), quality 92 with 4:2:0 chroma, as phones do."""
    import numpy as np
    from PIL import Image

    source = shared_photo(source_name)
    target = ROOT / "target" / "bench-data" / (
        f"{Path(source_name).stem}-12mp-v{BIG_PHOTO_VERSION}.jpg")
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)

    upright = Image.open(source).convert("RGB")
    width, height = 4000, 3000
    # Centre-crop the source to 4:3 before upscaling so nothing is stretched.
    sw, sh = upright.size
    if sw * 3 > sh * 4:
        crop = sh * 4 // 3
        upright = upright.crop(((sw - crop) // 2, 0, (sw - crop) // 2 + crop, sh))
    else:
        crop = sw * 3 // 4
        upright = upright.crop((0, (sh - crop) // 2, sw, (sh - crop) // 2 + crop))
    upright = upright.resize((width, height), Image.Resampling.LANCZOS)
    pixels = np.asarray(upright, dtype=np.float32)
    grain = np.random.default_rng(12).normal(0.0, 6.0, size=pixels.shape).astype(np.float32)
    upright = Image.fromarray(np.clip(pixels + grain, 0, 255).astype(np.uint8))

    # Orientation 6 means "rotate 90 degrees clockwise to display", so the
    # stored pixels are the upright picture turned 90 degrees anticlockwise.
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    partial = target.with_suffix(".partial")
    stored.save(partial, "JPEG", quality=92, subsampling="4:2:0", exif=exif.tobytes())
    partial.replace(target)
    return target
