#!/usr/bin/env bash
# Build the OCI image of hrvs-ray (apptainer/Containerfile) and smoke-test it: a real
# `hrvs-ray sweep sweeps/smoke.yaml` inside the image, then its results are checked (every cell
# ok, in_container, and the image identity recorded in provenance).
#
#   bash apptainer/build-oci.sh [options]          (from anywhere; as root or rootless)
#
# Options:
#   --engine buildah|podman|docker   default buildah (`buildah bud --isolation chroot`: no daemon)
#   --tag NAME                       image name (default localhost/hrvs-ray:REVISION12)
#   --base IMAGE                     base image (default: the Containerfile's pinned python slim)
#   --debootstrap-base               make the base offline first: `debootstrap --variant=minbase
#                                    bookworm` + python3 python3-venv ca-certificates, imported
#                                    as localhost/hrvs-ray-base:bookworm (what CI does; buildah
#                                    and podman only)
#   --mirror URL                     Debian mirror for --debootstrap-base (default deb.debian.org)
#   --base-only                      with --debootstrap-base: make the base and stop (build on it
#                                    later with --base localhost/hrvs-ray-base:bookworm)
#   --host-pip                       build with this machine's pip configuration (`pip config
#                                    list`: wheelhouse, local indexes, constraints), bound
#                                    read-only into the build with every local path it names
#                                    (buildah and podman only; docker build cannot bind)
#   --no-smoke                       build only
#   --oci-archive FILE               also write the image as an OCI archive (for `apptainer
#                                    build hrvs-ray.sif oci-archive://FILE`)
#
# Prints the build and smoke-test times and the image size. Exit 0 only when all passed.
set -euo pipefail

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
engine=buildah tag="" base="" debootstrap=0 mirror=http://deb.debian.org/debian host_pip=0 smoke=1 archive=""
base_only=0
while (($#)); do
  case $1 in
    --engine) engine=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    --debootstrap-base) debootstrap=1; shift ;;
    --mirror) mirror=$2; shift 2 ;;
    --base-only) base_only=1; shift ;;
    --host-pip) host_pip=1; shift ;;
    --no-smoke) smoke=0; shift ;;
    --oci-archive) archive=$2; shift 2 ;;
    *) echo "build-oci.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
case $engine in buildah | podman | docker) ;; *) echo "build-oci.sh: --engine must be buildah, podman or docker" >&2; exit 2 ;; esac
command -v "$engine" >/dev/null || { echo "build-oci.sh: $engine is not installed" >&2; exit 2; }
if [[ $engine == docker ]] && ((host_pip || debootstrap)); then
  echo "build-oci.sh: --host-pip and --debootstrap-base need buildah or podman (docker build cannot bind paths)" >&2
  exit 2
fi

revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
[[ $revision == unknown ]] || git -C "$repo" diff --quiet HEAD -- 2>/dev/null || revision="$revision-dirty"
tag=${tag:-localhost/hrvs-ray:${revision:0:12}}
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
now() { date +%s; }
log() { echo "build-oci.sh: $*"; }

make_base() {  # an offline Debian base: no container registry needed
  command -v debootstrap >/dev/null || { echo "build-oci.sh: debootstrap is not installed" >&2; exit 2; }
  local root=$work/rootfs t0
  t0=$(now)
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -cf "$work/rootfs.tar" .
  rm -rf "$root"
  base=localhost/hrvs-ray-base:bookworm
  "$engine" import "$work/rootfs.tar" "$base" >/dev/null 2>&1 || import_with_buildah "$work/rootfs.tar"
  rm -f "$work/rootfs.tar"
  log "base $base: debootstrap bookworm minbase + python3 python3-venv ca-certificates in $(($(now) - t0)) s"
}

import_with_buildah() {  # buildah has no `import`: a scratch container with the tree added
  local ctr
  ctr=$(buildah from scratch)
  buildah add "$ctr" "$1" / >/dev/null
  buildah config --cmd /bin/bash "$ctr"
  buildah commit --quiet --rm "$ctr" "$base" >/dev/null
}

pip_binds() {  # this machine's pip configuration as one file, and the local paths it names
  local py
  py=$(command -v python3)
  "$py" - "$work/pip.conf" <<'PY'
import os, subprocess, sys
out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                     check=True).stdout
rank = {"global": 0, "user": 1, "site": 2, ":env:": 3}   # pip's own order: env vars win
settings = {}
for line in out.splitlines():
    name, _, value = line.partition("=")
    variant, _, key = name.partition(".")
    if key and rank.get(variant, -1) >= settings.get(key, (-1, ""))[0]:
        settings[key] = (rank.get(variant, -1), value.strip().strip("'\""))
with open(sys.argv[1], "w") as f:
    f.write("[global]\n" + "".join(f"{k} = {v}\n" for k, (_, v) in sorted(settings.items())))
for _, v in settings.values():
    for word in v.split():
        path = (word[len("file://"):] if word.startswith("file://") else word).rstrip("/")
        if os.path.basename(path) == "simple":   # a local index's pages link to ../files/
            path = os.path.dirname(path)
        if path.startswith("/") and os.path.exists(path):
            print(path)
PY
}

build() {
  local args=(--build-arg "GIT_REVISION=$revision" -f "$repo/apptainer/Containerfile" -t "$tag")
  [[ -n $base ]] && args+=(--build-arg "BASE_IMAGE=$base")
  if ((host_pip)); then
    local p
    while read -r p; do args+=(-v "$p:$p:ro"); done < <(pip_binds)
    args+=(-v "$work/pip.conf:/etc/pip.conf:ro")
    log "pip configuration from this machine: $(tr '\n' ' ' <"$work/pip.conf")"
  fi
  case $engine in
    buildah) buildah bud --isolation chroot --layers=false "${args[@]}" "$repo" ;;
    podman) podman build --isolation chroot "${args[@]}" "$repo" ;;
    docker) docker build "${args[@]}" "$repo" ;;
  esac
}

image_id() {
  case $engine in
    buildah) buildah images --no-trunc --format '{{.ID}}' "$tag" | head -1 ;;
    *) "$engine" image inspect --format '{{.Id}}' "$tag" ;;
  esac
}

image_size() {
  case $engine in
    buildah) buildah images --format '{{.Size}}' "$tag" | head -1 ;;
    *) "$engine" image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.2f GB", $1 / 1e9}' ;;
  esac
}

in_image() {  # in_image SMOKE_DIR IDENTITY... -- COMMAND: run in a fresh container of the image
  local dir=$1 digest=$2
  shift 3
  local env=(-e "HRVS_CONTAINER_IMAGE=$tag" -e "HRVS_CONTAINER_DIGEST=$digest")
  case $engine in
    buildah)
      local ctr rc=0
      ctr=$(buildah from --pull-never "$tag")
      buildah run --isolation chroot -v "$dir:/smoke" "${env[@]}" "$ctr" -- "$@" || rc=$?
      buildah rm "$ctr" >/dev/null
      return $rc ;;
    *) "$engine" run --rm --shm-size=1g -v "$dir:/smoke" "${env[@]}" --entrypoint "" "$tag" "$@" ;;
  esac
}

smoke_test() {  # a real sweep in the image, then its results checked by the image's own Python
  local dir=$work/smoke digest
  mkdir -p "$dir"
  digest=$(image_id)
  [[ $digest == sha256:* ]] || digest="sha256:$digest"
  in_image "$dir" "$digest" -- bash -c \
    'cd /smoke && cp /opt/hrvs-ray-src/sweeps/smoke.yaml . && hrvs-ray sweep smoke.yaml --out /smoke/results/smoke --no-progress'
  in_image "$dir" "$digest" -- python - "$tag" "$digest" <<'PY'
import sys
import pyarrow.parquet as pq
tag, digest = sys.argv[1], sys.argv[2]
cells = pq.read_table("/smoke/results/smoke/cells.parquet").to_pylist()
assert len(cells) == 3 and all(c["status"] == "ok" for c in cells), [(c["cell_id"], c["status"], c["error"]) for c in cells]
for c in cells:
    assert c["in_container"] is True, c["in_container"]
    assert (c["container_image"], c["container_digest"]) == (tag, digest), (c["container_image"], c["container_digest"])
    assert c["driver_version"] == c["hrvs_ray_version"] and c["git_revision"], c["git_revision"]
    assert c["hostname"] and c["hrvs_ray_version"], c
import os
assert os.path.getsize("/smoke/reports/smoke.html") > 10_000
print(f"smoke results ok: {len(cells)} cells, in_container, image {tag} {digest}, revision {cells[0]['git_revision']}")
PY
  chmod -R u+rwX "$dir" 2>/dev/null || true
}

t0=$(now)
((debootstrap)) && make_base
((base_only)) && exit 0
t1=$(now)
build
t2=$(now)
log "built $tag ($(image_id)) in $((t2 - t1)) s; size $(image_size)"
if [[ -n $archive ]]; then
  case $engine in
    docker) docker save "$tag" -o "$archive" ;;
    *) "$engine" push "$tag" "oci-archive:$archive" ;;
  esac
  log "OCI archive: $archive"
fi
if ((smoke)); then
  smoke_test
  log "smoke test passed in $(($(now) - t2)) s"
fi
log "done in $(($(now) - t0)) s (base $((t1 - t0)) s, build $((t2 - t1)) s)"
