#!/usr/bin/env bash
# smimekit benchmark: sign / verify / encrypt / decrypt beside `openssl cms` on the same input.
#
# Not a test: it measures and prints. See bench/README.md for what it measures and how.
#
# Environment:
#   SMIMEKIT=PATH      use this binary instead of building one (cargo build --release)
#   CARGO_TARGET_DIR   where cargo builds (default: <repo>/target)
#   SIZES="4k 1m 100m 1g"   message sizes (any of 4k 1m 100m 1g; default all four)
#   OPS="sign verify encrypt decrypt"  operations (default all four)
#   RUNS=3             runs per measurement, best (lowest time) kept; 1 GiB always uses RUNS_1G (default 1)
#   RUNS_1G=1
#   BENCH_DIR=/tmp/smimekit-bench   generated messages (kept, reused) and scratch files (removed)
#   KEEP=1             keep the signed/encrypted outputs and the throw-away homes in BENCH_DIR
#   WRITE=1            also write the table to bench/results-<UTC date>.md
#
# Exit status: 0 when every command of every run succeeded, 1 as soon as one fails (its stderr is shown),
# 2 on a set-up problem. Missed speed/memory targets are reported, not turned into a failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FIX=$ROOT/fixtures
SIZES=${SIZES:-"4k 1m 100m 1g"}
OPS=${OPS:-"sign verify encrypt decrypt"}
RUNS=${RUNS:-3}
RUNS_1G=${RUNS_1G:-1}
BENCH_DIR=${BENCH_DIR:-/tmp/smimekit-bench}
TIME=/usr/bin/time

die() { echo "bench: error: $*" >&2; exit 2; }

[ -x "$TIME" ] || die "$TIME not found (GNU time). Install it: apt-get install -y time"
command -v openssl >/dev/null || die "openssl not found"

if [ -z "${SMIMEKIT:-}" ]; then
    echo "bench: building the release binary (cargo build --release)..." >&2
    (cd "$ROOT" && cargo build --release --quiet) || die "cargo build failed"
    SMIMEKIT=${CARGO_TARGET_DIR:-$ROOT/target}/release/smimekit
fi
[ -x "$SMIMEKIT" ] || die "no smimekit binary at $SMIMEKIT"

mkdir -p "$BENCH_DIR"
SCRATCH=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
cleanup() { if [ -z "${KEEP:-}" ]; then rm -rf "$SCRATCH"; else echo "bench: kept $SCRATCH" >&2; fi; }
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------------------
# Throw-away homes: alice (signer, sender; bob's certificate as a contact; the test root as an anchor) and
# bob (recipient). Two homes, so that encrypting to To: bob@example.org finds exactly one certificate (a
# contact) and the message has one RecipientInfo, like the openssl command.
export SMIMEKIT_PASSWORD=test-password
unset SMIMEKIT_PASSPHRASE SMIMEKIT_HOME
HA=$SCRATCH/home-alice
HB=$SCRATCH/home-bob
mkdir -m 700 "$HA" "$HB"
sk_setup() { "$SMIMEKIT" --batch "$@" >/dev/null 2>"$SCRATCH/setup.err" || { cat "$SCRATCH/setup.err" >&2; die "set-up failed: smimekit $*"; }; }
sk_setup --home "$HA" id import "$FIX/p12/alice-modern.p12" --no-passphrase
sk_setup --home "$HA" trust add "$FIX/pki/root.pem"
sk_setup --home "$HA" contact add "$FIX/pki/bob.pem"
sk_setup --home "$HB" id import "$FIX/p12/bob.p12" --no-passphrase

# ---------------------------------------------------------------------------------------------------------
# Messages: RFC 5322 headers, then a 7-bit CRLF text/plain body of 78-byte lines (76 characters + CRLF),
# no line starting with "From ", no trailing white space: signing needs no re-encoding. Exact size.
bytes_of() {
    case $1 in
        4k) echo 4096 ;; 1m) echo 1048576 ;; 100m) echo 104857600 ;; 1g) echo 1073741824 ;;
        *) die "unknown size '$1' (use 4k 1m 100m 1g)" ;;
    esac
}
LINE='The quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOPQRSTU'   # 76 characters
make_message() { # size-name file
    local total; total=$(bytes_of "$1")
    local hdr=$'From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: smimekit benchmark '"$1"$'\r\nDate: Wed, 25 Nov 2026 00:00:00 +0000\r\nMessage-ID: <bench-'"$1"$'@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n'
    local body=$(( total - ${#hdr} ))
    local n=$(( body / 78 )) rem=$(( body % 78 ))
    if [ "$rem" -lt 3 ] && [ "$n" -gt 0 ]; then n=$(( n - 1 )); rem=$(( rem + 78 )); fi   # last line >= 1 char
    {
        printf '%s' "$hdr"
        { yes "$LINE"$'\r' | head -n "$n"; } || true   # yes dies of SIGPIPE; the size check below catches real failures
        printf '%*s\r\n' $(( rem - 2 )) '' | tr ' ' 'z'
    } > "$2.tmp"
    [ "$(stat -c %s "$2.tmp")" -eq "$total" ] || die "generated $2 has the wrong size"
    mv "$2.tmp" "$2"
}

# ---------------------------------------------------------------------------------------------------------
# Measurement. Each run: /usr/bin/time -f '%e %M' around the command (peak RSS in KiB; %e has only 10 ms
# resolution, so the seconds reported come from a nanosecond clock read around the same call, which adds the
# fork/exec of `time` itself, ~1 ms). Best = lowest time of the runs; RSS = the highest of the runs.
RESULTS=$SCRATCH/results.tsv
: > "$RESULTS"
measure() { # op size-name bytes tool runs -- command...
    local op=$1 size=$2 bytes=$3 tool=$4 runs=$5; shift 6
    local best="" rss=0 i t0 t1 s m el
    for (( i = 1; i <= runs; i++ )); do
        # Each run writes a new file: freeing the previous run's output (what renaming over it, or openssl's
        # O_TRUNC, would do) is the file system's work, not the tool's, and is done here, untimed.
        rm -f "$SCRATCH/out.smimekit" "$SCRATCH/out.openssl"
        t0=$(date +%s%N)
        if ! "$TIME" -f '%e %M' -o "$SCRATCH/time.out" "$@" > /dev/null 2> "$SCRATCH/cmd.err"; then
            t1=$(date +%s%N)
            echo "bench: FAILED: $op $size $tool (run $i): $*" >&2
            sed 's/^/  | /' "$SCRATCH/cmd.err" >&2
            exit 1
        fi
        t1=$(date +%s%N)
        read -r el m < <(tail -n 1 "$SCRATCH/time.out")
        s=$(( t1 - t0 ))
        if [ -z "$best" ] || [ "$s" -lt "$best" ]; then best=$s; fi
        if [ "$m" -gt "$rss" ]; then rss=$m; fi
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$op" "$size" "$bytes" "$tool" "$best" "$rss" >> "$RESULTS"
    awk -v o="$op" -v z="$size" -v t="$tool" -v ns="$best" -v k="$rss" -v b="$bytes" 'BEGIN {
        printf "bench: %-8s %-5s %-9s %9.3f s %9.1f MB/s %8.1f MiB\n", o, z, t, ns/1e9, b/(ns/1e9)/1e6, k/1024 }' >&2
}

A_CERT=$FIX/pki/alice.pem
A_KEY=$FIX/pki/alice.key
B_CERT=$FIX/pki/bob.pem
B_KEY=$FIX/pki/bob.key
ROOT_CA=$FIX/pki/root.pem
CHAIN=$FIX/pki/chain.pem      # the intermediate: both tools put signer cert + intermediate in the signature

has_op() { case " $OPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench: smimekit $("$SMIMEKIT" --version 2>/dev/null | awk '{print $NF}') ($SMIMEKIT), $(openssl version)" >&2
for size in $SIZES; do
    bytes=$(bytes_of "$size")
    runs=$RUNS; [ "$size" = 1g ] && runs=$RUNS_1G
    msg=$BENCH_DIR/msg-$size.eml
    if [ ! -f "$msg" ] || [ "$(stat -c %s "$msg")" -ne "$bytes" ]; then
        echo "bench: generating $msg" >&2
        make_message "$size" "$msg"
    fi
    signed=$SCRATCH/signed-$size.eml
    enc=$SCRATCH/enc-$size.eml

    # Inputs of verify/decrypt: OUR output, made once (untimed), checked by both tools in the timed runs.
    if has_op verify; then
        "$SMIMEKIT" --home "$HA" --batch sign "$msg" > "$signed" 2> "$SCRATCH/cmd.err" \
            || { cat "$SCRATCH/cmd.err" >&2; echo "bench: FAILED: smimekit sign $size (preparing verify input)" >&2; exit 1; }
    fi
    if has_op decrypt; then
        "$SMIMEKIT" --home "$HA" --batch encrypt --no-self --cipher aes-256-gcm "$msg" > "$enc" 2> "$SCRATCH/cmd.err" \
            || { cat "$SCRATCH/cmd.err" >&2; echo "bench: FAILED: smimekit encrypt $size (preparing decrypt input)" >&2; exit 1; }
    fi

    if has_op sign; then
        measure sign "$size" "$bytes" smimekit "$runs" -- \
            "$SMIMEKIT" --home "$HA" --batch sign -o "$SCRATCH/out.smimekit" "$msg"
        # -binary: the input is already canonical (CRLF, 7-bit), so openssl's text-mode CRLF translation
        # would only cost time and sign the same bytes; -stream: detached S/MIME output without buffering.
        measure sign "$size" "$bytes" openssl "$runs" -- \
            openssl cms -sign -binary -stream -signer "$A_CERT" -inkey "$A_KEY" -certfile "$CHAIN" -md sha256 \
            -in "$msg" -out "$SCRATCH/out.openssl"
    fi
    if has_op verify; then
        measure verify "$size" "$bytes" smimekit "$runs" -- \
            "$SMIMEKIT" --home "$HA" --batch verify --no-system-trust --ca "$ROOT_CA" --no-harvest "$signed"
        measure verify "$size" "$bytes" openssl "$runs" -- \
            openssl cms -verify -CAfile "$ROOT_CA" -purpose smimesign -in "$signed" -out "$SCRATCH/out.openssl"
    fi
    if has_op encrypt; then
        measure encrypt "$size" "$bytes" smimekit "$runs" -- \
            "$SMIMEKIT" --home "$HA" --batch encrypt --no-self --cipher aes-256-gcm -o "$SCRATCH/out.smimekit" "$msg"
        measure encrypt "$size" "$bytes" openssl "$runs" -- \
            openssl cms -encrypt -aes-256-gcm -stream -recip "$B_CERT" -in "$msg" -out "$SCRATCH/out.openssl"
    fi
    if has_op decrypt; then
        measure decrypt "$size" "$bytes" smimekit "$runs" -- \
            "$SMIMEKIT" --home "$HB" --batch decrypt -o "$SCRATCH/out.smimekit" "$enc"
        measure decrypt "$size" "$bytes" openssl "$runs" -- \
            openssl cms -decrypt -recip "$B_CERT" -inkey "$B_KEY" -in "$enc" -out "$SCRATCH/out.openssl"
    fi
    rm -f "$signed" "$enc"
done

# ---------------------------------------------------------------------------------------------------------
# Table. MB = 10^6 bytes of the input message; MiB = 2^20 bytes. "speed ×" = openssl seconds / smimekit seconds
# (> 1: smimekit faster); "RSS ×" = smimekit peak RSS / openssl peak RSS; "RSS/input" = peak RSS / input size.
table() {
    awk -F '\t' '
    { key = $1 SUBSEP $2; ns[key, $4] = $5; rss[key, $4] = $6; bytes[key] = $3
      if (!(key in seen)) { seen[key] = 1; order[++n] = key; op[key] = $1; sz[key] = $2 }
      tools[key] = tools[key] " " $4 }
    END {
      print "| operation | size | tool | seconds | MB/s | peak RSS MiB | RSS/input | speed × openssl | RSS × openssl |"
      print "|---|---|---|---:|---:|---:|---:|---:|---:|"
      for (i = 1; i <= n; i++) {
        k = order[i]; split(tools[k], ts, " ")
        for (j = 1; j in ts; j++) {
          t = ts[j]; s = ns[k, t] / 1e9
          sp = "—"; rr = "—"
          if (t != "openssl" && ((k, "openssl") in ns)) {
            sp = sprintf("%.2f", ns[k, "openssl"] / ns[k, t]); rr = sprintf("%.2f", rss[k, t] / rss[k, "openssl"]) }
          # RSS/input only from 1 MiB up: below, it measures the fixed size of the program
          ri = bytes[k] >= 1048576 ? sprintf("%.2f", rss[k, t] * 1024 / bytes[k]) : "—"
          printf "| %s | %s | %s | %.3f | %.1f | %.1f | %s | %s | %s |\n", op[k], sz[k], t, s, bytes[k] / s / 1e6,
            rss[k, t] / 1024, ri, sp, rr
        }
      }
    }' "$RESULTS"
}

# The targets of issues #3 and #5, checked on whatever was measured.
targets() {
    awk -F '\t' '
    { ns[$1, $2, $4] = $5; rss[$1, $2, $4] = $6; by[$2] = $3 }
    function mbs(o, z) { return by[z] / (ns[o, z, "smimekit"] / 1e9) / 1e6 }
    function mib(o, z) { return rss[o, z, "smimekit"] / 1024 }
    function v(ok) { return ok ? "met" : "MISSED" }
    END {
      if (("verify", "100m", "smimekit") in ns && ("verify", "100m", "openssl") in ns) {
        x = ns["verify", "100m", "openssl"] / ns["verify", "100m", "smimekit"]
        printf "- verify >= 20x faster than openssl at 100 MiB: %.1fx — %s\n", x, v(x >= 20) }
      split("sign encrypt decrypt", ops, " "); want["sign"] = 1500; want["encrypt"] = 1000; want["decrypt"] = 600
      for (i = 1; i <= 3; i++) { o = ops[i]
        for (z in by) if (z == "100m" || z == "1g") if ((o, z, "smimekit") in ns) {
          x = mbs(o, z); printf "- %s >= %d MB/s at %s: %.0f MB/s — %s\n", o, want[o], z, x, v(x >= want[o]) } }
      split("sign verify encrypt", ops, " ")
      for (i = 1; i <= 3; i++) { o = ops[i]
        if ((o, "1g", "smimekit") in ns) { x = mib(o, "1g"); printf "- %s peak RSS <= 64 MiB at 1 GiB: %.1f MiB — %s\n", o, x, v(x <= 64) } }
      for (z in by) if (("decrypt", z, "smimekit") in ns && (z == "100m" || z == "1g")) {
        x = rss["decrypt", z, "smimekit"] * 1024 / by[z]
        printf "- decrypt peak RSS <= 1.2x input at %s: %.2fx — %s\n", z, x, v(x <= 1.2) }
    }' "$RESULTS" | sort
}

# The load average is printed because the machine may be shared: a load above the core count means the
# figures include waiting for a CPU.
HOSTINFO="$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(openssl version | awk '{print $1, $2}'), runs: best of $RUNS (1 GiB: $RUNS_1G), load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "smimekit benchmark — $HOSTINFO"
echo
table
echo
echo "Targets (issues #3, #5):"
targets
if [ -n "${WRITE:-}" ]; then
    out=$ROOT/bench/results-$(date -u +%Y-%m-%d).md
    {
        echo "# smimekit benchmark results"
        echo
        echo "$HOSTINFO; sizes: $SIZES; binary: $SMIMEKIT"
        echo
        table
        echo
        echo "Targets (issues #3, #5):"
        echo
        targets
    } > "$out"
    echo "bench: wrote $out" >&2
fi
