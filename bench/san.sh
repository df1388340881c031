#!/usr/bin/env bash
# Times contact add, inspect and verify of a certificate with N e-mail SAN entries (default 10,000), issued by the
# fixture intermediate: the address de-duplication must stay linear (it was quadratic: minutes at 10,000).
# Usage: bench/san.sh [SMIMEKIT_BINARY] [N]   (default: target/release/smimekit, 10000). Not run by CI.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$here/target/release/smimekit}
n=${2:-10000}
pki=$here/fixtures/pki
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
cd "$w"
openssl req -new -newkey rsa:2048 -nodes -keyout san.key -subj "/CN=Many" -out san.csr 2>/dev/null
{
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n'
  printf 'extendedKeyUsage=emailProtection\nsubjectAltName=@alt\n[alt]\n'
  for i in $(seq 1 "$n"); do echo "email.$i=user$i@example.com"; done
} > ext.cnf
openssl x509 -req -in san.csr -CA "$pki/inter.pem" -CAkey "$pki/inter.key" -set_serial 7 -days 3650 \
  -extfile ext.cnf -out san.pem 2>/dev/null
printf 'From: user1@example.com\r\nTo: b@example.org\r\nSubject: x\r\n\r\nhello\r\n' > m.eml
openssl smime -sign -in m.eml -signer san.pem -inkey san.key -certfile "$pki/inter.pem" -out signed.eml
echo "certificate: $n SANs, $(wc -c < san.pem) bytes; $("$bin" --version); $(openssl version)"
t() { local what=$1; shift; /usr/bin/time -f "$what: %e s, %M KB peak RSS" "$@" > /dev/null 2> err.txt || true; tail -1 err.txt; }
t "contact add" "$bin" --home "$w/h" --batch contact add san.pem
t "inspect    " "$bin" --home "$w/h" --batch inspect signed.eml
t "verify     " "$bin" --home "$w/h" --batch verify signed.eml --no-harvest --no-system-trust --ca "$pki/root.pem"
