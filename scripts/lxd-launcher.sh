#!/bin/sh
# PID 1 of the PID namespace that LXD runs in (netns-tests/lxd.rs, scripts/bench/lxd.py):
#   sh scripts/lxd-launcher.sh CGROUP_LIST STOP_FILE COMMAND...
# Mounts the cgroups listed in CGROUP_LIST again (`ip netns exec` hides them; one
# "MOUNTPOINT FSTYPE OPTIONS" a line), then runs COMMAND (LXD) again each time it
# exits (a service restart) until STOP_FILE exists. As PID 1 of the namespace it
# keeps the instances alive while LXD restarts.
list=$1; stop=$2; shift 2
grep -q '^/sys/fs/cgroup ' "$list" || mount -t tmpfs -o mode=755 cgroup-tmpfs /sys/fs/cgroup
while read -r mp fs opts; do o=$(echo "$opts" | sed 's/^r[ow],\{0,1\}//'); mkdir -p "$mp"
  if [ -n "$o" ]; then mount -t "$fs" -o "$o" "$fs" "$mp"; else mount -t "$fs" "$fs" "$mp"; fi
done <"$list"
while [ ! -e "$stop" ]; do "$@"; sleep 0.2; done
