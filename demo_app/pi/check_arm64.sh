#!/usr/bin/env bash
# Run the demo app on Debian bookworm arm64 (Raspberry Pi OS's base) under qemu-user emulation
# and check that it gives the same labels as this x86 host.
#
#   sudo demo_app/pi/check_arm64.sh EXPORT_DIR [ROOT_DIR]
#   (env: PYTHON=x86 python with the app's requirements, TEXTS=file of texts, one per line)
#
# Needs root and Debian's debootstrap, qemu-user-static and binfmt-support; downloads a
# minimal arm64 root (~300 MB, kept in ROOT_DIR, default /var/tmp/edgekit-arm64-root, for
# reruns) and the aarch64 wheels of demo_app/requirements.txt. Emulated timings are
# meaningless: this checks that the app installs and answers the same, never Pi latency.
set -euo pipefail
export_dir=$(realpath "${1:?usage: check_arm64.sh EXPORT_DIR [ROOT_DIR]}")
root=${2:-/var/tmp/edgekit-arm64-root}
here=$(cd "$(dirname "$0")/.." && pwd)   # demo_app/
python=${PYTHON:-python3}                  # x86 interpreter with demo_app/requirements.txt
texts=${TEXTS:-$here/pi/texts.txt}       # one text per line
[ -f "$export_dir/edgekit.json" ] || { echo "check_arm64: $export_dir: no edgekit.json (not an export folder)" >&2; exit 2; }
for tool in debootstrap qemu-aarch64-static update-binfmts chroot; do
  command -v "$tool" >/dev/null || { echo "check_arm64: $tool missing (apt-get install debootstrap qemu-user-static binfmt-support)" >&2; exit 2; }
done

# 1. aarch64 ELF binaries run through qemu (binfmt_misc, 'F' flag: works inside the chroot).
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
  || { echo "check_arm64: binfmt_misc has no enabled qemu-aarch64 entry" >&2; exit 1; }

# 2. Debian bookworm arm64, minimal, with Python (3.11, as on Raspberry Pi OS bookworm).
if [ ! -x "$root/usr/bin/python3" ]; then
  if [ -e "$root" ] && [ -n "$(ls -A "$root")" ]; then
    echo "check_arm64: $root is not empty and not a finished arm64 root; remove it or pass another ROOT_DIR" >&2; exit 2
  fi
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$root" http://deb.debian.org/debian
fi
# No /proc or /sys in the root on purpose: with both mounted LiteRT segfaulted under qemu
# (its CPU detection sees the x86 host's /proc/cpuinfo beside /sys's CPU lists). Without them
# it prints "Error in cpuinfo: failed to parse ..." and runs.
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/host-ca.crt"   # this host's trusted CAs

# 3. The app, the export folder and the aarch64 wheels of the app's requirements only.
rm -rf "$root/opt/demo_app" "$root/opt/export"
mkdir -p "$root/opt/demo_app"
cp "$here"/*.py "$here"/*.html "$here"/*.js "$here/requirements.txt" "$root/opt/demo_app/"
cp "$texts" "$root/opt/demo_app/texts.txt"
cp -r "$export_dir" "$root/opt/export"
run() { chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
echo "arm64 root: $(run uname -m), $(run python3 --version)"
[ -x "$root/opt/venv/bin/python" ] || run python3 -m venv /opt/venv
run /opt/venv/bin/pip install -q --disable-pip-version-check --only-binary=:all: \
  --cert /etc/ssl/certs/host-ca.crt -r /opt/demo_app/requirements.txt
run /opt/venv/bin/python -c "import platform, ai_edge_litert, tokenizers, numpy; print('wheels:', platform.machine(), 'numpy', numpy.__version__, 'tokenizers', tokenizers.__version__)"

# 4. Same texts, same artifacts, both machines: labels must be equal.
status=0
for artifact in $(run /opt/venv/bin/python -I /opt/demo_app artifacts /opt/export --runnable); do
  run /opt/venv/bin/python -I /opt/demo_app classify /opt/export --artifact "$artifact" --labels-only \
    < "$root/opt/demo_app/texts.txt" > /tmp/arm64-labels.txt
  "$python" -I "$here" classify "$export_dir" --artifact "$artifact" --labels-only < "$texts" > /tmp/x86-labels.txt
  if cmp -s /tmp/arm64-labels.txt /tmp/x86-labels.txt; then
    echo "$artifact: arm64 labels == x86 labels ($(wc -l < /tmp/x86-labels.txt) texts)"
  else
    echo "$artifact: arm64 labels differ from x86:"; diff /tmp/x86-labels.txt /tmp/arm64-labels.txt | head; status=1
  fi
done

# 5. The on-device benchmark script runs there too (edgekit/ondevice/bench.py, standalone):
#    only whether each artifact ran is printed; its emulated timings stay in a file.
bench="$here/../edgekit/ondevice/bench.py"
if [ -f "$bench" ]; then
  cp "$bench" "$root/opt/bench.py"
  if run /opt/venv/bin/python -I /opt/bench.py /opt/export --texts /opt/demo_app/texts.txt --threads 1 \
       --min-runs 3 --min-seconds 0.1 --json /tmp/arm64-bench.json > "$root/tmp/arm64-bench.log" 2>&1; then
    run /opt/venv/bin/python -c "import json; d = json.load(open('/tmp/arm64-bench.json'))
print('bench.py on', d['results'][0]['facts']['machine'] + ':', ', '.join(r['artifact'] + ' ' + r['status'] for r in d['results']))" \
      || { echo "bench.py: unexpected JSON"; status=1; }
  else
    echo "bench.py failed on arm64:"; tail -5 "$root/tmp/arm64-bench.log"; status=1
  fi
fi
echo "(timings under qemu emulation are not Raspberry Pi latency and are not reported)"
exit $status
