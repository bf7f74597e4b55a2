#!/usr/bin/env bash
# Builds the `holdfast:dev` container image without pulling anything: no registry is
# needed (or reachable) because the image is `FROM scratch` and holds only what we put
# in it — the release binary, exactly the shared libraries `ldd` reports, the dynamic
# loader, a passwd/group with `nobody`, and /tmp.
#
#   deploy/image/build.sh                 # builds, assembles, `docker build`s holdfast:dev
#   IMAGE=holdfast:test deploy/image/build.sh
#   SKIP_CARGO=1 deploy/image/build.sh    # reuse target/release/holdfast as it is
#   SKIP_CARGO=1 BINARY=target/debug/holdfast deploy/image/build.sh   # any prebuilt binary
#
# The rootfs is assembled under target/ (never in the source tree), so a rebuild starts
# from a clean directory and `git status` stays quiet.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
image="${IMAGE:-holdfast:dev}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
binary="${BINARY:-$target_dir/release/holdfast}"
context="$target_dir/holdfast-image"
rootfs="$context/rootfs"

if [[ "${SKIP_CARGO:-0}" != 1 ]]; then
  echo "== cargo build --release -p holdfast --locked"
  (cd "$root" && cargo build --release -p holdfast --locked)
fi
[[ -x "$binary" ]] || { echo "no binary at $binary (build it, or unset SKIP_CARGO)" >&2; exit 1; }

echo "== assembling $rootfs"
rm -rf "$context"
mkdir -p "$rootfs"/{etc/holdfast,tmp,var/lib} "$context/state/holdfast"
# Strip debug info: the release profile keeps line tables (debug = 1) for backtraces on
# the build host; the image does not need ~60 MB of DWARF.
if command -v strip >/dev/null 2>&1; then
  strip --strip-debug -o "$rootfs/holdfast" "$binary"
else
  cp "$binary" "$rootfs/holdfast"
fi
chmod 0755 "$rootfs/holdfast"

# Exactly what the dynamic linker needs: every `=> /path` library and the loader line
# (`/lib64/ld-linux-x86-64.so.2 (0x...)`). `cp -L` follows the distribution's symlinks
# (the loader is one on Debian) so the file lands at the path the binary asks for.
# linux-vdso has no file: it is provided by the kernel.
mapfile -t libs < <(ldd "$binary" | awk '
  $2 == "=>" && $3 ~ /^\// { print $3; next }
  $1 ~ /^\// { print $1 }')
if [[ ${#libs[@]} -eq 0 ]]; then
  # A static binary (e.g. a musl build) needs nothing else.
  echo "   ldd lists no libraries: static binary"
fi
for lib in "${libs[@]}"; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
  echo "   $lib"
done

# `nobody` to run as (USER in the Dockerfile); root only so tools that look up uid 0
# (docker exec, debuggers) find a name.
cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
chmod 1777 "$rootfs/tmp"
# The data directory travels separately so the Dockerfile can hand it to nobody: COPY
# --chown applies to what is copied, not to directories it creates on the way.
touch "$context/state/holdfast/.keep"

cp "$here/Dockerfile" "$context/Dockerfile"

echo "== docker build -t $image"
# The context is only the assembled rootfs and the Dockerfile. DOCKER_BUILDKIT=0 pins
# the classic builder: it needs no buildx plugin, and `FROM scratch` is a no-op there
# (nothing is pulled).
DOCKER_BUILDKIT=0 docker build --quiet -t "$image" "$context"

echo "== smoke test"
docker run --rm "$image" --version
