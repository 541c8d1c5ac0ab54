#!/usr/bin/env bash
# Build the HTML documentation into docs/_build/html, warnings as errors, offline.
# Needs approxmat installed and `pip install -r docs/requirements.txt` in the same
# environment. Set APPROXMAT_DOCS_INTERSPHINX=1 (with network access) to link into
# the Python, NumPy and threadpoolctl documentation.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
"$PYTHON" -c "import approxmat" 2>/dev/null || {
  echo "docs/build.sh: approxmat is not importable with $PYTHON; install it first" >&2
  exit 1
}
rm -rf docs/generated docs/_generated
exec "$PYTHON" -m sphinx -W --keep-going -b html docs docs/_build/html "$@"
