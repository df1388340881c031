#!/usr/bin/env bash
# smimekit scan benchmark: a generated Maildir of signed ~4 KiB messages (the signature part with its chain is
# about 3.5 KiB of it), verified by one `smimekit scan`,
# beside a loop of `openssl cms -verify` over a sample; each sampled verdict checked against `smimekit verify`.
#
# Not a test: it measures and prints. The figures are noisy on a shared machine: the load average and the
# OpenSSL version are printed with them.
#
# The small PKI: five signers of the fixture PKI (alice, bob, carol (EC P-256), dave, eve: trusted through
# fixtures/pki/root.pem) and one self-signed signer (untrusted). Each signs one template with `smimekit sign`;
# the messages are copies of the templates with different outer header fields (Message-ID, Subject, a padding
# field, all outside the signed part) and, for 10 %, one byte of the signed text changed (tampered).
# Expected: tampered and untrusted messages invalid, the rest valid.
#
# Environment:
#   SMIMEKIT=PATH     use this binary (default: cargo build --release)
#   N=10000           messages in the Maildir
#   SAMPLE=200        messages checked with `smimekit verify` and timed with `openssl cms -verify`
#   RUNS=3            scan runs (best kept)
#   JOBS=             --jobs for scan (default: one per core)
#   BENCH_DIR=/tmp/smimekit-scan-bench   where the Maildir and homes go (removed unless KEEP=1)
#
# Exit status: 0 when every sampled verdict agrees (and every verdict matches the generator's expectation),
# 1 when one does not, 2 on a set-up problem. A missed speed target is reported, not a failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FIX=$ROOT/fixtures
N=${N:-10000}
SAMPLE=${SAMPLE:-200}
RUNS=${RUNS:-3}
JOBS=${JOBS:-}
BENCH_DIR=${BENCH_DIR:-/tmp/smimekit-scan-bench}
TARGET=14000

die() { echo "bench/scan: error: $*" >&2; exit 2; }
command -v openssl >/dev/null || die "openssl not found"
command -v python3 >/dev/null || die "python3 not found (it generates the Maildir)"
[ -x /usr/bin/time ] || die "/usr/bin/time not found (GNU time). Install it: apt-get install -y time"
command -v bc >/dev/null || die "bc not found. Install it: apt-get install -y bc"

if [ -z "${SMIMEKIT:-}" ]; then
    echo "bench/scan: building the release binary..." >&2
    (cd "$ROOT" && cargo build --release --quiet) || die "cargo build failed"
    SMIMEKIT=${CARGO_TARGET_DIR:-$ROOT/target}/release/smimekit
fi
[ -x "$SMIMEKIT" ] || die "no smimekit binary at $SMIMEKIT"

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
cleanup() { if [ -z "${KEEP:-}" ]; then rm -rf "$BENCH_DIR"; else echo "bench/scan: kept $BENCH_DIR" >&2; fi; }
trap cleanup EXIT

export SMIMEKIT_PASSWORD=test-password
unset SMIMEKIT_PASSPHRASE SMIMEKIT_HOME
HS=$BENCH_DIR/home-signers   # the signers' IDs
HV=$BENCH_DIR/home-scan      # the reader: the fixture root as a trust anchor
mkdir -m 700 "$HS" "$HV"
sk() { "$SMIMEKIT" --batch "$@" >"$BENCH_DIR/setup.out" 2>&1 || { cat "$BENCH_DIR/setup.out" >&2; die "set-up failed: smimekit $*"; }; }
for p in alice-modern bob carol-legacy dave-sign eve; do
    sk --home "$HS" id import "$FIX/p12/$p.p12" --no-passphrase
done
sk --home "$HS" id new --email mallet@untrusted.example --name Mallet --no-passphrase
sk --home "$HV" trust add "$FIX/pki/root.pem"

# ---- templates: one ~1 KiB text per signer, signed; the signed message is about 4 KiB with its chain ----
T=$BENCH_DIR/templates
mkdir -p "$T"
SIGNERS="alice@example.com bob@example.org carol@example.net dave@example.com eve@evil.example mallet@untrusted.example"
i=0
for s in $SIGNERS; do
    {
        printf 'From: %s\r\nTo: archive@example.org\r\nSubject: template %d\r\nDate: Wed, 25 Nov 2026 09:00:00 +0000\r\nMessage-ID: <template-%d@bench.smimekit>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n' "$s" $i $i
        printf 'BENCH-BODY marker line: the generator changes one byte here for tampered copies.\r\n'
        for l in $(seq 1 3); do
            printf 'Line %02d of a plain text message that is signed once and copied many times.\r\n' "$l"
        done
    } >"$T/$i.txt"
    sk --home "$HS" sign "$T/$i.txt" --as "$s" -o "$T/$i.eml"
    i=$((i + 1))
done

# ---- the Maildir ----
MD=$BENCH_DIR/Maildir
python3 - "$T" "$MD" "$N" <<'EOF'
import os, sys
tdir, md, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for d in ("cur", "new", "tmp"):
    os.makedirs(os.path.join(md, d), exist_ok=True)
templates = []
for i in range(6):
    raw = open(os.path.join(tdir, f"{i}.eml"), "rb").read()
    head, sep, body = raw.partition(b"\r\n\r\n")
    # Outer fields outside the signed part: Message-ID and Subject are replaced per copy.
    fields = [f for f in head.split(b"\r\n") if not f.lower().startswith((b"message-id:", b"subject:"))]
    templates.append((fields, body))
expect = open(os.path.join(md, "..", "expected.tsv"), "w")
for k in range(n):
    t = k % 6
    fields, body = templates[t]
    tampered = (k // 6) % 10 == 3  # 10 % of each signer's messages
    if tampered:
        body = body.replace(b"BENCH-BODY", b"BENCH-BODX", 1)
    hdr = list(fields) + [b"Message-ID: <m%d@bench.smimekit>" % k, b"Subject: message %d" % k]
    size = sum(len(f) + 2 for f in hdr) + 2 + len(body)
    pad = 4096 - size - len(b"X-Bench-Pad: \r\n")
    if pad > 0:
        hdr.append(b"X-Bench-Pad: " + b"x" * pad)
    name = "%d.M%d.bench:2,S" % (1764000000 + k, k)
    with open(os.path.join(md, "cur", name), "wb") as f:
        f.write(b"\r\n".join(hdr) + b"\r\n\r\n" + body)
    # alice..eve are trusted; mallet (template 5) is self-signed: untrusted.
    expect.write("%s\t%s\n" % (name, "invalid" if tampered or t == 5 else "valid"))
EOF
SIZE=$(stat -c %s "$MD/cur/$(ls "$MD/cur" | head -1)")

# ---- scan (no harvest: verification only), best of RUNS ----
JOBARG=()
[ -n "$JOBS" ] && JOBARG=(--jobs "$JOBS")
best=""
for r in $(seq 1 "$RUNS"); do
    start=$(date +%s.%N)
    set +e
    /usr/bin/time -f "%U %S" -o "$BENCH_DIR/cpu.txt" \
        "$SMIMEKIT" --home "$HV" --json scan "$MD" --no-harvest "${JOBARG[@]}" >"$BENCH_DIR/scan.jsonl" 2>"$BENCH_DIR/scan.err"
    rc=$?
    set -e
    end=$(date +%s.%N)
    [ "$rc" -le 1 ] || { cat "$BENCH_DIR/scan.err" >&2; die "scan failed (exit $rc)"; }
    t=$(echo "$end - $start" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then
        best=$t
        # (GNU time writes "Command exited with non-zero status 1" first when scan exits 1.)
        CPU_US=$(tail -1 "$BENCH_DIR/cpu.txt" | awk -v n="$N" '{printf "%d", ($1 + $2) * 1e6 / n}')
    fi
done
SCAN_RATE=$(echo "$N / $best" | bc -l)

# ---- every verdict against the generator's expectation; a sample against `smimekit verify` ----
python3 - "$BENCH_DIR" "$SAMPLE" >"$BENCH_DIR/sample.txt" <<'EOF'
import json, os, random, sys
d, sample = sys.argv[1], int(sys.argv[2])
lines = [json.loads(l) for l in open(os.path.join(d, "scan.jsonl"))]
summary = lines.pop()
exp = dict(l.rstrip("\n").split("\t") for l in open(os.path.join(d, "expected.tsv")))
bad = 0
for l in lines:
    name = os.path.basename(l["path"])
    if l["verdict"] != exp[name]:
        bad += 1
        if bad <= 5:
            print("MISMATCH-EXPECTED", name, l["verdict"], exp[name], file=sys.stderr)
print("EXPECTED-MISMATCHES", bad)
print("SUMMARY", json.dumps(summary["verdicts"]), "chain cache hits/misses", summary["chain_cache"])
random.seed(7)
for l in random.sample(lines, min(sample, len(lines))):
    print("SAMPLE", l["path"], l["verdict"])
EOF
grep -E "^(EXPECTED|SUMMARY)" "$BENCH_DIR/sample.txt"
EXPECTED_BAD=$(awk '/^EXPECTED-MISMATCHES/ {print $2}' "$BENCH_DIR/sample.txt")
disagree=0
checked=0
while read -r _ path verdict; do
    set +e
    "$SMIMEKIT" --home "$HV" verify "$path" --no-harvest >/dev/null 2>&1
    rc=$?
    set -e
    case $rc in 0) v=valid ;; 1) v=invalid ;; *) v=error ;; esac
    checked=$((checked + 1))
    if [ "$v" != "$verdict" ]; then
        disagree=$((disagree + 1))
        echo "DISAGREE: $path: scan $verdict, verify $v" >&2
    fi
done < <(grep '^SAMPLE' "$BENCH_DIR/sample.txt")

# ---- openssl cms -verify over the same sample ----
start=$(date +%s.%N)
while read -r _ path _; do
    openssl cms -verify -in "$path" -CAfile "$FIX/pki/root.pem" -purpose smimesign -out /dev/null >/dev/null 2>&1 || true
done < <(grep '^SAMPLE' "$BENCH_DIR/sample.txt")
end=$(date +%s.%N)
OSSL_RATE=$(echo "$checked / ($end - $start)" | bc -l)

# ---- one scan with harvesting (the contacts written once at the end) ----
start=$(date +%s.%N)
set +e
"$SMIMEKIT" --home "$HV" scan "$MD" "${JOBARG[@]}" >"$BENCH_DIR/scan-harvest.txt" 2>&1
set -e
end=$(date +%s.%N)
HARVEST_RATE=$(echo "$N / ($end - $start)" | bc -l)
ADDED=$(grep -c '^  added ' "$BENCH_DIR/scan-harvest.txt" || true)

echo
echo "smimekit scan benchmark ($(date -u +%Y-%m-%dT%H:%MZ))"
echo "  $(openssl version); $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg) (figures are noisy on a shared machine)"
echo "  Maildir: $N signed messages of ~$SIZE bytes, 6 signers (1 untrusted), 10 % tampered"
printf '  scan (no harvest, best of %d):   %8.0f messages/s  (%.3f s)  target %d: %s\n' "$RUNS" "$SCAN_RATE" "$best" "$TARGET" \
    "$([ "$(echo "$SCAN_RATE >= $TARGET" | bc -l)" = 1 ] && echo met || echo MISSED)"
printf '  scan CPU time (user+sys):        %8s us per message (what 2 idle cores divide: %.0f messages/s)\n' "$CPU_US" \
    "$(echo "2000000 / $CPU_US" | bc -l)"
printf '  scan with harvest (1 run):       %8.0f messages/s  (%d contacts added)\n' "$HARVEST_RATE" "$ADDED"
printf '  openssl cms -verify loop:        %8.0f messages/s  (%d messages)  -> scan is %.0fx\n' "$OSSL_RATE" "$checked" \
    "$(echo "$SCAN_RATE / $OSSL_RATE" | bc -l)"
echo "  verdicts: $EXPECTED_BAD of $N differ from the generator's expectation; $disagree of $checked sampled differ from smimekit verify"
[ "$disagree" = 0 ] && [ "$EXPECTED_BAD" = 0 ] || exit 1
