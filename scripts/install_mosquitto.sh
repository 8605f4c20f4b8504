#!/usr/bin/env bash
# Install Eclipse Mosquitto (the telemetry broker) from Debian's packages, idempotently.
#
# The project starts its own broker as a child process (offchain/telemetry/broker.py) with a
# generated config under the node's home; the system service that the package ships is neither
# enabled nor started here. Debian installs the binaries in /usr/sbin, which a non-root PATH may
# lack: the broker module looks there too.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]]; }

if have mosquitto && have mosquitto_passwd; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_mosquitto: mosquitto is missing and apt-get is not available; install Eclipse Mosquitto (>= 2.0) by hand" >&2
  exit 1
fi

SUDO=""
if [[ "$(id -u)" != "0" ]]; then
  SUDO="sudo"
fi

# policy-rc.d answering 101 keeps the package's maintainer scripts from starting the system
# service during the install (Debian's documented switch); removed afterwards if we created it.
POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=0
if [[ ! -e "$POLICY" ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  CREATED_POLICY=1
fi
trap '[[ $CREATED_POLICY == 1 ]] && $SUDO rm -f "$POLICY"' EXIT

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends mosquitto

# The package enables the system service for the next boot: the project runs its own broker.
# Removing the wants link is what `systemctl disable` does, and works without a running systemd.
$SUDO rm -f /etc/systemd/system/multi-user.target.wants/mosquitto.service

if ! have mosquitto || ! have mosquitto_passwd; then
  echo "install_mosquitto: apt-get finished but mosquitto or mosquitto_passwd is still missing" >&2
  exit 1
fi
