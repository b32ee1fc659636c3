#!/usr/bin/env bash
# Run the security suite as an ordinary user (the non-root server of docs/security.md: tier A in
# a user namespace, tiers B and C forced). Needs root to create the user; run by .ci/run after
# the README's test command. The user gets its own copy of the checkout and its own venv on the
# system's python3: a root-only interpreter (pyenv under /root) is out of its reach.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "icpy: test-as-user.sh needs root (to create the test user); skipped"
    exit 0
fi
user="${ICPY_TEST_USER:-icpytest}"
python=/usr/bin/python3
if ! command -v useradd >/dev/null 2>&1 || [ ! -x "$python" ]; then
    echo "icpy: no useradd or $python here; the ordinary-user security run is skipped"
    exit 0
fi
if ! "$python" -c "import venv, ensurepip" >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
id "$user" >/dev/null 2>&1 || useradd -m "$user"
home=$(getent passwd "$user" | cut -d: -f6)

# A copy of the tree as it is here (committed or not), without this checkout's venv.
rm -rf "$home/icpy"
mkdir -p "$home/icpy"
tar --exclude=./.venv --exclude=./.git --exclude='*.egg-info' --exclude=__pycache__ -cf - . \
    | tar -C "$home/icpy" -xf -
chown -R "$user": "$home/icpy"

run() { su "$user" -s /bin/bash -c "cd ~ && $*"; }
run "[ -x venv/bin/python ] || $python -m venv venv"
run "venv/bin/python -m pip install -q --upgrade pip && venv/bin/python -m pip install -q -e './icpy[test]'"
run "cd icpy && ../venv/bin/icpy kernels install --sys-prefix >/dev/null"
echo "icpy: the security suite as $user (uid $(id -u "$user"))"
run "cd icpy && ../venv/bin/python -m pytest -q -p no:cacheprovider tests/security"
