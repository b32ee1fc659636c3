#!/usr/bin/env bash
# Install everything icpy_kernels needs on Debian/Ubuntu: system packages (Node.js for the
# JavaScript kernel, bubblewrap for the sandbox), a virtualenv in .venv with the package,
# and the kernelspecs. Idempotent. `--test` also installs the test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

extra=""
[ "${1:-}" = "--test" ] && extra="[test]"

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

packages=()
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v bwrap >/dev/null 2>&1 || packages+=(bubblewrap)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || packages+=(python3-venv)
if [ ${#packages[@]} -gt 0 ]; then
    echo "icpy: installing system packages: ${packages[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
    echo "icpy: Node.js >= 18 is required for the JavaScript kernel (found $(node --version))" >&2
    exit 1
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${extra}"
# Exit 1 here means a spec of the same name elsewhere (JUPYTER_PATH) comes first for other front
# ends; it says which on stderr. icpy itself does not need the installed specs, so go on.
.venv/bin/icpy kernels install --sys-prefix >/dev/null || echo "icpy: (kernelspecs: see above)" >&2
echo "icpy: installed. Kernels:"
.venv/bin/icpy kernels list
