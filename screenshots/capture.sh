#!/usr/bin/env bash
# Makes the PNGs of screenshots/ from the real application in a real
# terminal: `vmrr tui` runs in tmux, keys are typed, `tmux capture-pane -e`
# keeps the colours, `aha` turns them into HTML and headless Chromium takes
# the picture. Installs tmux, aha and chromium (Debian) when missing; needs
# /dev/kvm to record the trace it shows.
#
#   screenshots/capture.sh            # all shots into screenshots/
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v tmux >/dev/null || need+=(tmux)
command -v aha >/dev/null || need+=(aha)
command -v chromium >/dev/null || need+=(chromium)
fc-list 2>/dev/null | grep -qi "DejaVu Sans Mono" || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "capture: as root, or install: ${need[*]}" >&2; exit 1; }
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

cargo build --release
vmrr=$PWD/target/release/vmrr
work=$(mktemp -d)
trap 'tmux -L vmrr-shots kill-server 2>/dev/null || true; rm -rf "$work"' EXIT
trace=$work/kv-trace
"$vmrr" record clusters/kvstore-bug.toml -o "$trace" >/dev/null 2>&1

tm() { tmux -L vmrr-shots "$@"; }

# start NAME COLS ROWS [ARGS]: a fresh terminal running the TUI (on the
# demo trace, or with ARGS).
start() {
    tm kill-server 2>/dev/null || true
    sleep 0.5
    tm -f /dev/null new-session -d -s shot -x "$2" -y "$3" "$vmrr tui ${4:-$trace}"
    tm set -s escape-time 0
    sleep 1.5
}

# settle: waits (at most 10 s) until no operation is running or queued.
settle() {
    for _ in $(seq 50); do
        # A running operation shows "» label" in the status bar.
        tm capture-pane -t shot -p | tail -1 | grep -q "^» " || return 0
        sleep 0.2
    done
}

# keys K...: types tmux key names one by one; text STR: types literally.
keys() { for k in "$@"; do tm send-keys -t shot "$k"; sleep 0.25; done; sleep 0.4; settle; }
text() { tm send-keys -t shot -l "$1"; sleep 0.4; }

# shot NAME COLS ROWS: the pane as a PNG.
shot() {
    local name=$1 cols=$2 rows=$3
    tm capture-pane -t shot -e -p -N >"$work/$name.ansi"
    {
        echo '<!DOCTYPE html><html><head><meta charset="utf-8"><style>'
        echo 'html,body{margin:0;background:#000}'
        echo 'pre{margin:0;padding:8px;font-family:"DejaVu Sans Mono",monospace;font-size:14px;line-height:17px;color:#ddd}'
        echo '</style></head><body><pre>'
        aha --black --no-header <"$work/$name.ansi"
        echo '</pre></body></html>'
    } >"$work/$name.html"
    # DejaVu Sans Mono at 14px: 8.43px a column, 17px a row; 8px padding.
    local w=$(( (cols * 843 + 99) / 100 + 16 )) h=$(( rows * 17 + 16 ))
    chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
        --disable-component-update --disable-sync --user-data-dir="$(mktemp -d -p "$work")" \
        --hide-scrollbars --force-device-scale-factor=1 --window-size="$w,$h" \
        --screenshot="$PWD/screenshots/$name.png" "file://$work/$name.html" >/dev/null 2>&1
    echo "screenshots/$name.png"
}

# The line of the stale write in kv_apply (`store[key] = val;`).
line=$(grep -n 'store\[key\] = val;' guests/kvstore/kvstore.c | head -1 | cut -d: -f1)

# 1. The trace at start: whole-trace timeline with its legend, the boot
#    code (assembly: registers beside it), events.
start main 120 40
shot 01-start 120 40

# 2. The symptom: /stale Enter goes to primary's read-stale marker; the
#    source pane shows marker() through its inlined outl().
keys /; text stale; keys Enter
shot 02-stale-read 120 40

# 3. Frames only, the previous one (backup2's reply), followed back to its
#    send: backup2's source and locals in on_read().
keys Escape k p f
shot 03-follow-to-backup2 120 40

# 4. backup2's markers: apply 9, then the late apply 5 (selected).
keys k v v v /; text "apply = 5"; keys Enter Escape
shot 04-late-apply-5 120 40

# 5. The frame received just before it: its payload decoded (WRITE #5
#    k3=31); zoomed in on the heal, frames drawn from lane to lane.
keys K p t + + + + + + +
shot 05-resend-payload 120 40

# 6. The README's picture: the stale write itself, at 140x45. A breakpoint
#    at its file:line, reverse-continue from backup2's `apply = 5`: the
#    line is marked and val holds 31.
start source 140 45
keys g; text backup2:38745; keys Enter b; text "kvstore.c:$line"; keys Enter C
shot 06-stale-write-source 140 45

# 7. Wide: registers, the mixed view (source lines and their instructions)
#    and the locals side by side.
start wide 180 48
keys g; text backup2:38745; keys Enter b; text "kvstore.c:$line"; keys Enter C s
shot 07-wide-mixed 180 48

# 8. The same stop at the smallest size: locals beside the source.
start small 80 24
keys g; text backup2:38745; keys Enter b; text "kvstore.c:$line"; keys Enter C
shot 08-source-80x24 80 24

# 9. Help at the smallest size, and the message below it.
keys '?'
shot 09-help-80x24 80 24
tm resize-window -t shot -x 40 -y 10; sleep 0.6
shot 10-too-small 40 10

# 11. Asking the recording: every call of kv_apply (marked ƒ on the
#     timeline), backup2's late write #5 selected.
start calls 120 40
keys a; text kv_apply; keys Enter Down Down Down Down Down Down Down Down Down Down Down Down Down
shot 11-calls-kv-apply 120 40

# 12. Where backup2's stale 31 came from: store[3] at its end, link by
#     link back through frame #49 to the primary's write log.
keys 3 g; text end; keys Enter M; text store; keys Enter Y; text "[3]"; keys Enter
shot 12-origin-store-3 120 40

# 13. What if: the demo forked at the late resend with frame #49 dropped,
#     opened beside its parent: ≠ where each VM's run first differs, ⋔ the
#     fork point; D goes to backup2's divergence and shows both sides.
"$vmrr" fork "$trace" --at 122.165321ms "drop frame 49" -o "$work/kv-drop" >/dev/null 2>&1
start beside 120 40 "$work/kv-drop --beside"
keys 3 D
shot 13-fork-beside 120 40
