"""scripts/bench-vs-onnxruntime: times our engine (tract, through
`imagenet-classroom bench --fixed-input`) and ONNX Runtime on the same model
and the same input, in one run, and checks that they give the same output.

The two engines take turns in blocks (ours, ORT, then ORT, ours, ...), so a
neighbour compiling on the machine slows both alike rather than one of them.
Each of our blocks is a fresh process (the thread count is process-wide in
tract) that loads the model, runs it twice untimed, then --runs times timed;
each ORT block runs a session kept from the start twice untimed, then --runs
times. The medians are over every timed run of every block. The last lines
are `ratio MODEL threads=N: R` (our median / ORT's), for scripts to read.
"""

import argparse
import re
import sys
import time

import benchlib

# Argmax of ONNX Runtime on the fixed input, from ../shared/README.md.
REFERENCE_ARGMAX = {"googlenet-shape-random": 373, "mobilenetv2": 418}
# "A correct runtime matches these to about 1e-4 relative" (../shared/README.md).
TOLERANCE = 1e-4


def ort_session(model, threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model.onnx), options, providers=["CPUExecutionProvider"])


def ort_block(session, feed, runs):
    """Two untimed runs, then `runs` timed ones; returns milliseconds."""
    for _ in range(2):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def probabilities(model, raw):
    import numpy as np

    values = np.asarray(raw, dtype=np.float64).reshape(-1)
    if model.logits:
        values = np.exp(values - values.max())
        values /= values.sum()
    return values


def compare(a, b):
    """(argmax of a, argmax of b, max relative difference of a to b)."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    relative = np.abs(a - b) / np.maximum(np.abs(b), 1e-30)
    return int(a.argmax()), int(b.argmax()), float(relative.max())


def tract_version():
    try:
        lock = (benchlib.ROOT / "Cargo.lock").read_text()
        found = re.search(r'name = "tract-onnx"\nversion = "([^"]+)"', lock)
        return found.group(1) if found else "?"
    except OSError:
        return "?"


def spread(block_medians):
    return f"{min(block_medians):.1f}-{max(block_medians):.1f}"


def main():
    benchlib.PROG = "bench-vs-onnxruntime"
    parser = argparse.ArgumentParser(
        prog="scripts/bench-vs-onnxruntime",
        description="Time tract (ours) against ONNX Runtime on the fixed input.")
    parser.add_argument("--runs", type=int, default=20,
                        help="timed runs per block (default 20)")
    parser.add_argument("--blocks", type=int, default=5,
                        help="blocks per engine and configuration (default 5)")
    parser.add_argument("--models", default="googlenet-shape-random,mobilenetv2",
                        help="comma-separated model names or manifests")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    args = parser.parse_args()
    if args.runs < 1 or args.blocks < 1:
        benchlib.die("--runs and --blocks must be at least 1")
    threads = [int(t) for t in args.threads.split(",")]
    models = [benchlib.load_model(m) for m in args.models.split(",")]

    import onnxruntime as ort

    x = benchlib.fixed_input()
    sessions, feeds = {}, {}
    for model in models:
        for t in threads:
            session = ort_session(model, t)
            name = session.get_inputs()[0].name
            if model.input_name and name != model.input_name:
                benchlib.die(f"{model.onnx} takes input {name!r}, but {model.manifest} "
                             f"says {model.input_name!r}")
            sessions[(model.name, t)] = session
            feeds[(model.name, t)] = {name: x}

    benchlib.warn_if_busy()
    times = {}  # (model, threads, engine) -> every timed run, ms
    blocks = {}  # (model, threads, engine) -> each block's median, ms
    ours_output = {}
    for block in range(args.blocks):
        for model in models:
            for t in threads:
                print(f"block {block + 1}/{args.blocks}: {model.name} threads={t}",
                      file=sys.stderr, flush=True)
                engines = ["ours", "ort"] if block % 2 == 0 else ["ort", "ours"]
                for engine in engines:
                    if engine == "ours":
                        report = benchlib.run_rust_bench(model, t, args.runs, fixed=True)[0]
                        runs = report["inference_runs_ms"]
                        if "output" in report:
                            ours_output[(model.name, t)] = report["output"]
                    else:
                        runs = ort_block(sessions[(model.name, t)], feeds[(model.name, t)],
                                         args.runs)
                    times.setdefault((model.name, t, engine), []).extend(runs)
                    blocks.setdefault((model.name, t, engine), []).append(
                        benchlib.median(runs))

    print(f"scripts/bench-vs-onnxruntime --runs {args.runs} --blocks {args.blocks}: "
          f"fixed input of ../shared/README.md, {args.runs * args.blocks} timed runs "
          "per engine and row, in alternating blocks")
    print(f"ours: tract-onnx {tract_version()}; ONNX Runtime {ort.__version__} "
          "(intra_op_num_threads=threads, inter_op 1, sequential, ORT_ENABLE_ALL)")
    print(benchlib.machine_summary())
    print()

    # Agreement: both engines' outputs on the fixed input, as probabilities.
    disagreements = 0
    for model in models:
        for t in threads:
            ort_raw = sessions[(model.name, t)].run(None, feeds[(model.name, t)])[0]
            theirs = probabilities(model, ort_raw)
            expected = REFERENCE_ARGMAX.get(model.name)
            note = ""
            if expected is not None and int(theirs.argmax()) != expected:
                note = f" (ORT's argmax should be {expected} per ../shared/README.md)"
                disagreements += 1
            if (model.name, t) not in ours_output:
                print(f"output {model.name} threads={t}: ORT argmax {int(theirs.argmax())}; "
                      "ours not checked: this build's `bench --json` does not report its "
                      f"output{note}")
                continue
            ours_arg, ort_arg, rel = compare(ours_output[(model.name, t)], theirs)
            ok = ours_arg == ort_arg and rel <= TOLERANCE and not note
            disagreements += not ok
            print(f"output {model.name} threads={t}: argmax ours {ours_arg}, ORT {ort_arg}; "
                  f"max relative difference {rel:.2e} "
                  f"({'agree' if ok else 'DISAGREE'} within {TOLERANCE:g}){note}")
        if all((model.name, t) in ours_output for t in threads) and len(threads) > 1:
            first = ours_output[(model.name, threads[0])]
            for t in threads[1:]:
                _, _, rel = compare(ours_output[(model.name, t)], first)
                print(f"output {model.name}: ours threads={t} vs threads={threads[0]}: "
                      f"max relative difference {rel:.2e}")
    print()

    rows, ratios = [], []
    for model in models:
        for t in threads:
            ours = benchlib.median(times[(model.name, t, "ours")])
            theirs = benchlib.median(times[(model.name, t, "ort")])
            rows.append([model.name, t, f"{ours:.1f} ms", f"{theirs:.1f} ms",
                         f"{ours / theirs:.2f}", spread(blocks[(model.name, t, "ours")]),
                         spread(blocks[(model.name, t, "ort")])])
            ratios.append(f"ratio {model.name} threads={t}: {ours / theirs:.2f}")
    print(benchlib.markdown_table(
        ["model", "threads", "ours (tract)", "ONNX Runtime", "ours / ORT",
         "ours, block medians (ms)", "ORT, block medians (ms)"],
        rows, right={1, 2, 3, 4}))
    print()
    print("\n".join(ratios))
    sys.stdout.flush()
    if disagreements:
        sys.exit(1)


if __name__ == "__main__":
    main()
