# Shared by the benchmark scripts (source it, do not run it): makes sure the
# pinned Python packages of scripts/lib/requirements.txt are installed in a
# virtual environment cached under target/, and that a release build of the
# binary exists. Nothing here is needed by the product itself.
#
# After `bench_setup`, BENCH_PYTHON is the venv's interpreter and BENCH_BIN
# the imagenet-classroom binary (IMAGENET_CLASSROOM_BIN overrides it).

BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BENCH_VENV="$BENCH_ROOT/target/bench-venv"
BENCH_REQUIREMENTS="$BENCH_ROOT/scripts/lib/requirements.txt"

bench_die() {
  echo "${0##*/}: $*" >&2
  exit 2
}

# Creates the venv on first use, and again whenever requirements.txt changed
# (the venv keeps a copy of the file it was built from). A lock keeps two
# scripts started at once from building it together.
bench_venv() {
  mkdir -p "$BENCH_ROOT/target"
  exec 9>"$BENCH_ROOT/target/bench-venv.lock"
  flock 9
  if ! cmp -s "$BENCH_REQUIREMENTS" "$BENCH_VENV/requirements.txt" \
      || ! "$BENCH_VENV/bin/python" -c '' 2>/dev/null; then
    command -v python3 >/dev/null \
      || bench_die "python3 is missing: install Python 3.11 or newer (Debian: apt-get install python3 python3-venv)"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
      || bench_die "python3 is $(python3 -V 2>&1 | cut -d' ' -f2); these scripts need 3.11 or newer"
    echo "${0##*/}: installing pinned Python packages into target/bench-venv (once)" >&2
    rm -rf "$BENCH_VENV"
    python3 -m venv "$BENCH_VENV" \
      || bench_die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    if ! "$BENCH_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-input -r "$BENCH_REQUIREMENTS" >&2; then
      rm -rf "$BENCH_VENV"
      bench_die "pip could not install scripts/lib/requirements.txt: this needs PyPI once" \
        "(or a mirror set with PIP_INDEX_URL); afterwards target/bench-venv is reused"
    fi
    cp "$BENCH_REQUIREMENTS" "$BENCH_VENV/requirements.txt"
  fi
  exec 9>&-
  BENCH_PYTHON="$BENCH_VENV/bin/python"
}

# The release binary: benchmarks of a debug build mean nothing. cargo itself
# decides whether anything needs rebuilding.
bench_binary() {
  if [[ -n "${IMAGENET_CLASSROOM_BIN:-}" ]]; then
    BENCH_BIN="$IMAGENET_CLASSROOM_BIN"
    [[ -x "$BENCH_BIN" ]] || bench_die "IMAGENET_CLASSROOM_BIN=$BENCH_BIN is not an executable"
    return
  fi
  command -v cargo >/dev/null || bench_die "cargo is missing: install Rust (https://rustup.rs)"
  echo "${0##*/}: cargo build --release" >&2
  (cd "$BENCH_ROOT" && cargo build --release --quiet --bin imagenet-classroom) \
    || bench_die "cargo build --release failed"
  BENCH_BIN="$BENCH_ROOT/target/release/imagenet-classroom"
}

bench_setup() {
  bench_venv
  bench_binary
  export BENCH_ROOT BENCH_BIN
}
