"""scripts/bench: the median time to classify one image, split into decode,
preprocess and inference, for each shared model, on a shared photo and on a
12-megapixel phone-like JPEG made from it, with one thread and with two.

Each (model, threads) pair is one run of `imagenet-classroom bench`, which
loads the model once, runs each image twice untimed, then --runs timed times.
The table it prints is Markdown, for README.md.
"""

import argparse
import sys

import benchlib


def main():
    benchlib.PROG = "bench"
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Median decode, preprocess and inference time of one classification.")
    parser.add_argument("--runs", type=int, default=20,
                        help="timed runs per image and configuration (default 20)")
    parser.add_argument("--models", default="mobilenetv2,googlenet-shape-random",
                        help="comma-separated model names or manifests")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--photo", default="cat.jpg",
                        help="shared photo to time, and to make the 12 MP JPEG from")
    args = parser.parse_args()
    if args.runs < 1:
        benchlib.die("--runs must be at least 1")
    threads = [int(t) for t in args.threads.split(",")]
    models = [benchlib.load_model(m) for m in args.models.split(",")]

    from PIL import Image

    small = benchlib.shared_photo(args.photo)
    big = benchlib.big_photo(args.photo)
    shown = {}
    for path, what in ((small, ""), (big, ", EXIF-rotated")):
        with Image.open(path) as image:
            w, h = image.size
        shown[path.name] = f"{path.name} ({w}x{h}{what}, {path.stat().st_size // 1000} kB)"

    benchlib.warn_if_busy()
    print(f"scripts/bench --runs {args.runs}: median of {args.runs} runs after 2 warm-up runs")
    print(benchlib.machine_summary())
    print()

    rows, totals = [], {}
    for model in models:
        for t in threads:
            print(f"timing {model.name} threads={t} ...", file=sys.stderr, flush=True)
            for r in benchlib.run_rust_bench(model, t, args.runs, images=[small, big]):
                rows.append([
                    model.name, shown.get(r["image"], r["image"]), t,
                    f"{r['decode_ms']:.1f} ms", f"{r['preprocess_ms']:.1f} ms",
                    f"{r['inference_ms']:.1f} ms", f"{r['total_ms']:.1f} ms",
                ])
                totals[(model.name, t, r["image"])] = r["total_ms"]

    print(benchlib.markdown_table(
        ["model", "image", "threads", "decode", "preprocess", "inference", "total"],
        rows, right={2, 3, 4, 5, 6}))
    print()
    print(f"12 MP end to end / {small.name} end to end (target: at most 2.00):")
    for model in models:
        for t in threads:
            ratio = totals[(model.name, t, big.name)] / totals[(model.name, t, small.name)]
            print(f"big-photo {model.name} threads={t}: {ratio:.2f}")


if __name__ == "__main__":
    main()
