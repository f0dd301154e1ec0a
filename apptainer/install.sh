#!/usr/bin/env bash
# Install hrvs-ray and its exactly pinned dependencies into a virtual environment.
#
#   bash apptainer/install.sh PREFIX
#
# One script for every install path, so the recipe cannot rot unseen: the image
# (apptainer/hrvs-ray.def, %post), CI (.ci/run: `bash apptainer/install.sh .venv`) and the
# README's one-line install all run it. Idempotent: a second run re-resolves the pins
# (already satisfied, no downloads) and reinstalls only hrvs-ray itself.
#
# Environment:
#   PYTHON                 interpreter that creates the venv (default: python3; use 3.11,
#                          the version the pins in requirements.txt were frozen with)
#   HRVS_RAY_GIT_REVISION  revision to record when the source is not a git checkout
#                          (the image build passes it in; see hrvs-ray.def)
set -euo pipefail

if [[ $# -ne 1 || -z $1 ]]; then
  echo "usage: $0 PREFIX   (virtual environment to create or update)" >&2
  exit 2
fi
prefix=$1
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd -- "$here/.." && pwd)
python=${PYTHON:-python3}

if [[ ! -x $prefix/bin/python ]]; then
  if [[ -e $prefix ]] && [[ -n $(ls -A -- "$prefix") ]]; then
    echo "error: $prefix exists but is not a virtual environment (no bin/python)" >&2
    exit 2
  fi
  "$python" -m venv -- "$prefix"
fi
vpy=$prefix/bin/python

"$vpy" -m pip install --quiet --upgrade pip
"$vpy" -m pip install --quiet -r "$here/requirements.txt"

# Build from a clean copy of the package sources, not in the tree: setuptools' build/
# directory never drops stale modules (a deleted file would still ship), and the tree may
# be read-only (a bind mount, the image's %files copy).
stage=$(mktemp -d)
trap 'rm -rf -- "$stage"' EXIT
items=()
for item in pyproject.toml setup.cfg setup.py MANIFEST.in README.md LICENSE hrvs_ray; do
  [[ -e $repo/$item ]] && items+=("$item")
done
tar -C "$repo" --exclude=__pycache__ --exclude='*.pyc' -cf - "${items[@]}" | tar -C "$stage" -xf -
# pyproject names README.md as the long description; a tree without it must still build.
[[ -e $stage/README.md ]] || echo "hrvs-ray" >"$stage/README.md"

# Record which source revision is installed, for the provenance of every result cell
# (hrvs_ray/cluster/provenance.py reads it when the code no longer sits in a git checkout). It is
# written into the staged package so it ships in the wheel and leaves with an uninstall.
revision=${HRVS_RAY_GIT_REVISION:-}
if [[ -z $revision ]] && command -v git >/dev/null && git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
  if revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null); then
    git -C "$repo" diff --quiet HEAD -- 2>/dev/null || revision="$revision-dirty"
  else
    revision=""  # a repository without commits yet
  fi
fi
"$vpy" -I - "$stage/hrvs_ray/_build_info.json" "$revision" <<'PY'
import datetime, json, sys
path, revision = sys.argv[1], sys.argv[2] or None
info = {"git_revision": revision,
        "installed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
with open(path, "w") as f:
    json.dump(info, f)
PY

# A regular (not editable) install: package data (shape table, report template) must ship.
"$vpy" -m pip install --quiet --no-deps --force-reinstall "$stage"

# -I: ignore the current directory, or a run from the repo root would find the source tree.
pkg_dir=$("$vpy" -I -c 'import hrvs_ray, pathlib; print(pathlib.Path(hrvs_ray.__file__).resolve().parent)')
prefix_abs=$(cd -- "$prefix" && pwd -P)
if [[ $pkg_dir != "$prefix_abs"/* ]]; then
  echo "error: hrvs_ray imports from $pkg_dir, not from $prefix" >&2
  exit 1
fi
[[ -f $pkg_dir/_build_info.json ]] || { echo "error: $pkg_dir/_build_info.json did not ship" >&2; exit 1; }
"$vpy" -m pip check
echo "hrvs-ray installed in $prefix (revision: ${revision:-unknown})"
