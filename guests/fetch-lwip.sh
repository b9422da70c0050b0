#!/usr/bin/env bash
# Fetches lwIP's sources from Debian's source package into a cache directory
# of the guests' build, once.  Never into the repository: nothing of lwIP is
# committed; the kit only carries its own port (lwip-port/).
#
#   guests/fetch-lwip.sh DEST        (the Makefile runs: fetch-lwip.sh build/lwip-src)
#
# Afterwards DEST/lwip is the unpacked tree (Debian's patches applied by
# dpkg-source; the kit compiles only src/core, src/core/ipv4 and
# src/netif/ethernet.c from it), DEST/VERSION names the package version,
# and DEST/.fetched is the stamp the Makefile depends on.
#
# Needs a deb-src entry for bookworm and dpkg-dev: scripts/install-deps.sh
# sets both up.  LWIP_SRC_TREE=/path/to/lwip-2.1.3 uses an already unpacked
# tree instead of apt (copied, so the cache stays self-contained).
#
# apt-get runs as whoever runs the build.  As root, apt would hand the
# download to its sandbox user `_apt`, which cannot write into a build
# directory owned by root, and warns "Download is performed unsandboxed as
# root"; we ask for no sandbox up front (APT::Sandbox::User=root), which is
# what apt falls back to anyway, without the warning.
set -euo pipefail

die() {
    echo "fetch-lwip: error: $*" >&2
    exit 1
}
hint="run scripts/install-deps.sh (as root) to add a deb-src entry and dpkg-dev, or set LWIP_SRC_TREE to an unpacked lwip-2.1.x tree ('make -C guests base' builds the images that do not use lwIP)"

[ $# -eq 1 ] || { echo "usage: $0 DEST" >&2; exit 2; }
dest=$1
[ -f "$dest/.fetched" ] && exit 0

mkdir -p "$(dirname "$dest")"
tmp=$(mktemp -d "$dest.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"                        # mktemp makes it private

if [ -n "${LWIP_SRC_TREE:-}" ]; then
    [ -f "$LWIP_SRC_TREE/src/include/lwip/init.h" ] \
        || die "LWIP_SRC_TREE=$LWIP_SRC_TREE is not an lwIP source tree (no src/include/lwip/init.h)"
    echo "fetch-lwip: copying $LWIP_SRC_TREE"
    cp -a "$LWIP_SRC_TREE" "$tmp/lwip"
    version="(copied from $LWIP_SRC_TREE)"
else
    command -v apt-get >/dev/null || die "apt-get not found: lwIP comes from Debian's source package; $hint"
    command -v dpkg-source >/dev/null || die "dpkg-source not found (package dpkg-dev); $hint"
    opts=(-q -y)
    [ "$(id -u)" = 0 ] && opts+=(-o APT::Sandbox::User=root)
    echo "fetch-lwip: apt-get source lwip (once; cached in $dest)"
    if ! out=$(cd "$tmp" && apt-get "${opts[@]}" source lwip 2>&1); then
        echo "$out" | sed 's/^/fetch-lwip:   /' >&2
        die "\`apt-get source lwip\` failed; $hint"
    fi
    shopt -s nullglob
    dirs=("$tmp"/lwip-*/)
    [ ${#dirs[@]} -eq 1 ] || die "apt-get source lwip left no single lwip-* directory in $tmp"
    mv "${dirs[0]}" "$tmp/lwip"
    dsc=("$tmp"/lwip_*.dsc)
    version=$(sed -n 's/^Version: //p' "${dsc[0]}")
    rm -f "$tmp"/lwip_*
fi

# The port (lwip-port/) is written against 2.1's raw API and options.
init_h=$tmp/lwip/src/include/lwip/init.h
major=$(sed -n 's/^#define LWIP_VERSION_MAJOR[[:space:]]*\([0-9]*\).*/\1/p' "$init_h")
minor=$(sed -n 's/^#define LWIP_VERSION_MINOR[[:space:]]*\([0-9]*\).*/\1/p' "$init_h")
[ "$major.$minor" = "2.1" ] || die "got lwIP $major.$minor ($version); the kit's port expects 2.1.x"

echo "$version" >"$tmp/VERSION"
touch "$tmp/.fetched"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "fetch-lwip: lwIP $version in $dest/lwip"
