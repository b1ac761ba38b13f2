#!/usr/bin/env bash
# Makes a self-signed certificate for this machine (localhost, 127.0.0.1, ::1), for trying the
# facade's HTTPS port and for the tests: DIR/cert.pem and DIR/key.pem (P-256), valid 30 days.
# A certificate still valid for a day is kept. Browsers warn about it (nobody they trust signed
# it): accept it once, or give the facade a real certificate instead.
#
#   scripts/dev_cert.sh DIR
set -euo pipefail
dir=${1:?usage: $0 DIR}
command -v openssl >/dev/null 2>&1 || { echo "openssl is missing: apt-get install openssl" >&2; exit 1; }
mkdir -p "$dir"
if [ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ] \
  && openssl x509 -in "$dir/cert.pem" -noout -checkend 86400 >/dev/null 2>&1; then
  exit 0
fi
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
  -addext "basicConstraints=critical,CA:FALSE" \
  -addext "extendedKeyUsage=serverAuth" \
  -keyout "$dir/key.pem.new" -out "$dir/cert.pem.new" 2>/dev/null
mv "$dir/key.pem.new" "$dir/key.pem"
mv "$dir/cert.pem.new" "$dir/cert.pem"
