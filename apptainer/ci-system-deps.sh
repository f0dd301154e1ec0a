#!/usr/bin/env bash
# Debian packages the CI run needs beyond Python (called by .ci/run, as root):
#   slurm-wlm   slurmctld + slurmd + sbatch for tests/packaging/test_slurm_launcher.py (a one-node
#               SLURM the test configures itself, auth/none: no munge daemon needed)
#   chromium    headless rendering checks of the HTML report
#   linux-perf  the `perf` tool, to cross-check hardware counters
#   git         provenance (git revision of the checkout)
#   buildah     builds the OCI image (apptainer/Containerfile) and runs its smoke test
#   debootstrap makes CI's offline base image for it (no container registry is reachable)
#   g++         the C++ compiler torch.compile's Inductor runs for CPU kernels (remedies.compile)
# Non-interactive and idempotent: already installed packages are left as they are.
set -euo pipefail

packages=(slurm-wlm chromium linux-perf git buildah debootstrap g++)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "system packages present: ${packages[*]}"
  exit 0
fi
sudo=()
if ((EUID != 0)); then
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
# The package would start its own daemons on systems with systemd; the test runs private
# ones with a generated configuration, so stop any that started (ignore where none did).
if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
  "${sudo[@]}" systemctl disable --now slurmctld slurmd munge 2>/dev/null || true
fi
