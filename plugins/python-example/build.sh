#!/usr/bin/env bash
# build.sh: builds the Python example codec (app.py) into a WebAssembly component with
# componentize-py, against the repository's wit/ (world `codec`).
#
#   plugins/python-example/build.sh OUT.wasm [APP_DIR]
#   STRATA_PYTHON_CODEC_OUT=OUT.wasm plugins/python-example/build.sh
#
# APP_DIR holds the app.py to build (default: this directory; the tests build a variant).
# OUT.wasm must lie outside the checkout (the build never writes into the repository: app.py
# is copied to a temporary directory first, so not even __pycache__ lands here). Needs the
# componentize-py pinned in requirements.txt on PATH (or named by $COMPONENTIZE_PY).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

out="${1:-${STRATA_PYTHON_CODEC_OUT:-}}"
if [ -z "$out" ]; then
    echo "usage: $0 OUT.wasm [APP_DIR]   (or set STRATA_PYTHON_CODEC_OUT)" >&2
    exit 2
fi
if ! command -v python3 >/dev/null; then
    echo "build.sh: python3 not found (componentize-py is a Python package)" >&2
    exit 3
fi
out="$(python3 -c 'import os, sys; print(os.path.realpath(sys.argv[1]))' "$out")"
root="$(python3 -c 'import os, sys; print(os.path.realpath(sys.argv[1]))' "$root")"
case "$out" in
"$root"/*)
    echo "build.sh: refusing to write $out inside the checkout; give a path outside it" >&2
    exit 2
    ;;
esac

tool="${COMPONENTIZE_PY:-componentize-py}"
want="$(sed -n 's/^componentize-py==//p' "$here/requirements.txt")"
if ! have="$("$tool" --version 2>/dev/null)"; then
    echo "build.sh: componentize-py not found; install it with:" >&2
    echo "  python3 -m pip install -r $here/requirements.txt" >&2
    exit 3
fi
if [ "$have" != "componentize-py $want" ]; then
    echo "build.sh: found $have, this example is pinned to componentize-py $want:" >&2
    echo "  python3 -m pip install -r $here/requirements.txt" >&2
    exit 3
fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$(dirname "$out")"
cp "${2:-$here}/app.py" "$stage/"
(cd "$stage" && "$tool" -d "$root/wit" -w codec componentize -p "$stage" app -o "$stage/out.wasm" >"$stage/log" 2>&1) || {
    cat "$stage/log" >&2
    exit 1
}
mv "$stage/out.wasm" "$out"
python3 - "$out" <<'PY'
import hashlib, sys
data = open(sys.argv[1], "rb").read()
print(f"{sys.argv[1]} {len(data)} bytes sha256 {hashlib.sha256(data).hexdigest()}")
PY
