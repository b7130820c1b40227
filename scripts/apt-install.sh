#!/usr/bin/env bash
# apt-install.sh PACKAGE...: installs Debian packages the project's scripts need, as root or
# through sudo, without letting their install scripts start daemons (Debian's prometheus,
# nginx and etcd packages would start servers, nginx on port 80 of every interface): a
# policy-rc.d that answers 101 is put in place for the install, and removed again if this
# script created it.
set -euo pipefail
(($#)) || exit 0

sudo=()
if ((EUID != 0)); then
    command -v sudo >/dev/null || { echo "apt-install: need root or sudo to install: $*" >&2; exit 1; }
    sudo=(sudo)
fi
created_policy=0
remove_policy() {
    if ((created_policy)); then "${sudo[@]}" rm -f /usr/sbin/policy-rc.d; fi
}
trap remove_policy EXIT
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
fi
echo "apt-install: installing from Debian: $*" >&2
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
