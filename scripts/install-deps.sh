#!/usr/bin/env bash
# Installs the host tools vmrr's guest kit and cross-checks need:
#   gcc, make        build the guest kernels (guests/Makefile)
#   gdb, tmux        interactive debugging / terminal UI tests
#   qemu-system-x86  reference emulator for cross-checking guest behaviour
#   tshark           reads the pcapng captures `vmrr pcap` writes (tests);
#                    installed without its setuid capture helper (debconf
#                    question answered in advance, so nothing is asked)
#   lwIP's sources   `apt-get source lwip` for the guests that run lwIP's
#                    TCP/IP (guests/fetch-lwip.sh); needs a deb-src entry
#                    and dpkg-dev (dpkg-source unpacks the package)
#
# Idempotent: only installs what is missing, and only runs `apt-get update`
# when something actually has to be installed.  Must run as root (Debian 12).
#
# QEMU comes from bookworm-backports: the machines already carry qemu-utils
# from that suite, so bookworm's own qemu-system-x86 (7.2) conflicts with it.
# Backports is not in the default sources, so we add a second deb822 file that
# repeats the URIs/Signed-By of the main Debian stanza in debian.sources.
# The source entry (deb-src, bookworm) is a third deb822 file built the same
# way.  Nothing is downloaded from it here: the guests' build fetches lwIP
# into its own build directory.
set -euo pipefail

log() { echo "install-deps: $*"; }
die() { echo "install-deps: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
command -v apt-get >/dev/null || die "apt-get not found (this script targets Debian 12 bookworm)"

export DEBIAN_FRONTEND=noninteractive

SRC_DIR=/etc/apt/sources.list.d
MAIN_SOURCES=$SRC_DIR/debian.sources
BPO_SOURCES=$SRC_DIR/debian-backports.sources
DEBSRC_SOURCES=$SRC_DIR/debian-src.sources

# command -> Debian package providing it
declare -A PKG_OF=(
    [gcc]=gcc
    [make]=make
    [gdb]=gdb
    [tmux]=tmux
    [dpkg-source]=dpkg-dev
    [tshark]=tshark
)
CMDS=(gcc make gdb tmux dpkg-source tshark)

missing=()
for cmd in "${CMDS[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${PKG_OF[$cmd]}")
done
need_qemu=0
command -v qemu-system-x86_64 >/dev/null 2>&1 || need_qemu=1

# Does apt know lwIP's source package?  (Needs a deb-src entry and an
# `apt-get update` after it was added.)
lwip_source_known() {
    apt-cache showsrc lwip 2>/dev/null | grep -q '^Package: lwip$'
}
need_src=0
lwip_source_known || need_src=1

if [ ${#missing[@]} -eq 0 ] && [ $need_qemu -eq 0 ] && [ $need_src -eq 0 ]; then
    log "all present (${CMDS[*]} qemu-system-x86_64, lwip source package)"
    exit 0
fi

# Print the URIs: and Signed-By: lines of the first deb822 stanza in
# debian.sources whose Suites: include plain "bookworm" (i.e. the main archive,
# not debian-security).
main_stanza_fields() {
    awk '
        function flush() {
            if (is_main && uris != "") { print uris; if (sig != "") print sig; found = 1; exit }
            uris = ""; sig = ""; is_main = 0
        }
        /^[[:space:]]*$/ { flush(); next }
        /^URIs:/       { uris = $0 }
        /^Signed-By:/  { sig = $0 }
        /^Suites:/     { for (i = 2; i <= NF; i++) if ($i == "bookworm") is_main = 1 }
        END { if (!found) flush() }
    ' "$MAIN_SOURCES"
}

if [ $need_qemu -eq 1 ] && [ ! -f "$BPO_SOURCES" ]; then
    [ -f "$MAIN_SOURCES" ] || die "$MAIN_SOURCES not found; cannot derive the backports source"
    fields=$(main_stanza_fields)
    [ -n "$fields" ] || die "no stanza with 'Suites: bookworm' in $MAIN_SOURCES"
    log "adding $BPO_SOURCES (bookworm-backports)"
    {
        echo "# Added by vmrr scripts/install-deps.sh: QEMU comes from bookworm-backports."
        echo "Types: deb"
        echo "$fields" | grep '^URIs:'
        echo "Suites: bookworm-backports"
        echo "Components: main"
        echo "$fields" | grep '^Signed-By:' || true
    } >"$BPO_SOURCES"
fi

# A deb-src entry, unless some source entry exists already (then the
# `apt-get update` below is all that was missing).
has_deb_src() {
    grep -qs '^[[:space:]]*Types:.*\bdeb-src\b' "$SRC_DIR"/*.sources \
        || grep -qs '^[[:space:]]*deb-src[[:space:]]' /etc/apt/sources.list "$SRC_DIR"/*.list
}
if [ $need_src -eq 1 ] && ! has_deb_src; then
    [ -f "$MAIN_SOURCES" ] || die "$MAIN_SOURCES not found; cannot derive a deb-src entry"
    fields=$(main_stanza_fields)
    [ -n "$fields" ] || die "no stanza with 'Suites: bookworm' in $MAIN_SOURCES"
    log "adding $DEBSRC_SOURCES (deb-src bookworm, for apt-get source lwip)"
    {
        echo "# Added by vmrr scripts/install-deps.sh: the guests build lwIP from its source package."
        echo "Types: deb-src"
        echo "$fields" | grep '^URIs:'
        echo "Suites: bookworm"
        echo "Components: main"
        echo "$fields" | grep '^Signed-By:' || true
    } >"$DEBSRC_SOURCES"
fi

log "apt-get update"
if ! out=$(apt-get update -q 2>&1); then
    echo "$out" >&2
    die "apt-get update failed"
fi

if [ ${#missing[@]} -gt 0 ]; then
    # tshark's package asks whether non-root users may capture; the tests
    # only read files, so: no, and without asking.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    log "installing ${missing[*]}"
    if ! out=$(apt-get install -y -q --no-install-recommends "${missing[@]}" 2>&1); then
        echo "$out" >&2
        die "apt-get install ${missing[*]} failed"
    fi
fi

if [ $need_qemu -eq 1 ]; then
    log "installing qemu-system-x86 from bookworm-backports"
    if ! out=$(apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-x86 2>&1); then
        echo "$out" >&2
        die "apt-get install -t bookworm-backports qemu-system-x86 failed"
    fi
fi

for cmd in "${CMDS[@]}" qemu-system-x86_64; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after install"
done
lwip_source_known || die "apt still does not know the source package lwip (check the deb-src entry in $SRC_DIR)"
log "done: $(qemu-system-x86_64 --version | head -n1)"
