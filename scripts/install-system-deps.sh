#!/usr/bin/env bash
# Installs the Debian packages the tests, the demo and the benchmarks use, when missing.
# Idempotent; as a non-root user it only reports what is missing.
set -euo pipefail

# what must exist (a command on PATH, or an absolute file path) -> Debian package
declare -A NEED=(
  [ip]=iproute2
  [ping]=iputils-ping
  [tcpdump]=tcpdump
  [tshark]=tshark
  [iperf3]=iperf3
  [/usr/lib/ipsec/charon]=strongswan-charon
  [swanctl]=strongswan-swanctl
  [/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so]=libcharon-extra-plugins
  [/usr/lib/ipsec/plugins/libstrongswan-gcm.so]=libstrongswan-standard-plugins
  [nft]=nftables
)

missing=()
for what in "${!NEED[@]}"; do
  if [[ $what == /* ]]; then
    [ -e "$what" ] || missing+=("${NEED[$what]}")
  else
    command -v "$what" >/dev/null 2>&1 || missing+=("${NEED[$what]}")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: not root; missing Debian packages: ${missing[*]}" >&2
  exit 0
fi
echo "install-system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# No package may start a service here (strongswan-starter would start a charon that holds
# UDP 500/4500): the tests start their own daemons. policy-rc.d exit 101 = "not allowed".
restore=""
if [ -e /usr/sbin/policy-rc.d ]; then
  restore=$(mktemp)
  cp -p /usr/sbin/policy-rc.d "$restore"
fi
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
trap 'if [ -n "$restore" ]; then mv "$restore" /usr/sbin/policy-rc.d; else rm -f /usr/sbin/policy-rc.d; fi' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
