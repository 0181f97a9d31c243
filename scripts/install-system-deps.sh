#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo use, when missing.
# Idempotent; as a non-root user it only reports what is missing.
set -euo pipefail

# command -> Debian package
declare -A NEED=(
  [ip]=iproute2
  [ping]=iputils-ping
  [tcpdump]=tcpdump
  [tshark]=tshark
  [iperf3]=iperf3
  [/usr/lib/ipsec/charon]=strongswan-charon
  [swanctl]=strongswan-swanctl
  [/usr/lib/ipsec/lookip]=libcharon-extra-plugins
)

missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: not root; missing Debian packages: ${missing[*]}" >&2
  exit 0
fi
echo "install-system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
