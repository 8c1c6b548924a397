#!/usr/bin/env bash
# Debian tools that some tests use and skip without (they name the package in the skip reason): the ffmpeg
# command line (a stream-copied cut for the seek tests), clang (the C kernel built by another compiler) and
# gcc-aarch64-linux-gnu (the kernel's aarch64 build compiled with -Werror). Installed with apt-get when missing
# and this runs as root (or with password-less sudo); otherwise it says which are missing and exits 0, and
# those tests skip.
set -uo pipefail

source "$(dirname "$0")/as_root.sh"

declare -A package_of=([ffmpeg]=ffmpeg [clang]=clang [aarch64-linux-gnu-gcc]=gcc-aarch64-linux-gnu)
missing=()
for tool in "${!package_of[@]}"; do
    command -v "$tool" >/dev/null || missing+=("${package_of[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
install() {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}
if command -v apt-get >/dev/null && { install || { as_root apt-get update -q >/dev/null && install; }; }; then
    echo "system tools: installed ${missing[*]}"
else
    echo "system tools: could not install ${missing[*]} (not root, or no apt-get); the tests that need them skip"
fi
exit 0
