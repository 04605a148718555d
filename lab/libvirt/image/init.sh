#!/bin/sh
# PID 1 of an hcisim lab node (kernel command line: init=/sbin/hcisim-init).
#
# Why not systemd: under software emulation (TCG) every unit, udev's coldplug and the
# generators cost seconds of emulated CPU; this script brings a node from kernel to "sshd and
# glusterd up" in a few seconds. It does only what a node of the lab needs, in order:
# filesystems, modules, the per-node seed (a NoCloud-layout disk, volume label cidata, read
# from node.env), the guest layer disk, NICs by MAC, ssh key, chronyd, sshd, brick mounts,
# glusterd, then the volume mounts once glusterd answers. Then tini takes over PID 1 to reap orphans.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
log() { echo "hcisim-init: $*" > /dev/console; echo "$(date +%s.%N) $*" >> /var/log/hcisim-init.log; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/sshd /run/lock /run/gluster /var/log/glusterfs
mount -o remount,rw /
log "root mounted, $(cut -d' ' -f1 /proc/uptime) s since boot"

# No udev: load by hand what the node's devices need.
modprobe -a virtio_net virtio_rng isofs fuse xfs 2>/dev/null

seed=/run/hcisim-seed
mkdir -p "$seed"
for dev in /sys/block/vd*; do
  if [ "$(cat "$dev/serial" 2>/dev/null)" = hcisim-seed ]; then
    mount -o ro "/dev/${dev##*/}" "$seed" && break
  fi
done
# The guest layer (hcisim.lab.guests' kernel and initramfs), when the lab attached it: a
# read-only disk with serial hcisim-guest, at /opt/hcisim/guest.
for dev in /sys/block/vd*; do
  if [ "$(cat "$dev/serial" 2>/dev/null)" = hcisim-guest ]; then
    mkdir -p /opt/hcisim/guest
    mount -o ro "/dev/${dev##*/}" /opt/hcisim/guest && break
  fi
done
if [ ! -r "$seed/node.env" ]; then
  log "no seed disk (serial hcisim-seed): only the console works"
  exec tini -- sleep infinity
fi
# shellcheck disable=SC1091
. "$seed/node.env"

hostname "$HCISIM_HOSTNAME"
echo "$HCISIM_HOSTNAME" > /etc/hostname
cp "$seed/hosts" /etc/hosts

ip link set lo up
nic_by_mac() {
  for d in /sys/class/net/*; do
    [ "$(cat "$d/address")" = "$1" ] && { echo "${d##*/}"; return; }
  done
}
up_nic() {  # MAC NAME ADDR/PREFIX MTU
  dev=$(nic_by_mac "$1")
  [ -n "$dev" ] || { log "no NIC with MAC $1"; return; }
  ip link set dev "$dev" name "$2"
  ip link set dev "$2" mtu "$4"
  ip addr add "$3" dev "$2"
  ip link set dev "$2" up
}
up_nic "$HCISIM_MGMT_MAC" mgmt "$HCISIM_MGMT_ADDR" "$HCISIM_MGMT_MTU"
up_nic "$HCISIM_STORAGE_MAC" storage "$HCISIM_STORAGE_ADDR" "$HCISIM_STORAGE_MTU"

install -d -m 700 /root/.ssh
install -m 600 "$seed/authorized_keys" /root/.ssh/authorized_keys

if [ -z "$HCISIM_NTP_SERVER" ]; then
  printf 'local stratum 8\nallow %s\ndriftfile /var/lib/chrony/drift\nmakestep 1 -1\n' \
    "$HCISIM_NTP_ALLOW" > /etc/chrony/chrony.conf
else
  printf 'server %s iburst minpoll 2 maxpoll 4\ndriftfile /var/lib/chrony/drift\nmakestep 0.1 -1\n' \
    "$HCISIM_NTP_SERVER" > /etc/chrony/chrony.conf
fi
mkdir -p /run/chrony
chronyd -f /etc/chrony/chrony.conf

/usr/sbin/sshd
log "sshd up, $(cut -d' ' -f1 /proc/uptime) s since boot"

# Bricks first (fstab entries written by the deploy), then glusterd, as an enabled
# glusterd.service would do after local-fs.target.
# glusterd's start-up takes tens of seconds of emulated CPU: do not hold the boot for it.
mount -a -t xfs
( glusterd -p /run/glusterd.pid; log "glusterd started, $(cut -d' ' -f1 /proc/uptime) s since boot" ) &

# Volume mounts need a volfile server that answers: retry in the background.
(
  for _ in $(seq 1 120); do
    if grep -q ' glusterfs ' /etc/fstab; then
      mount -a -t glusterfs 2>/dev/null
      missing=$(awk '$3 == "glusterfs" {print $2}' /etc/fstab | while read -r m; do
        grep -q " $m fuse.glusterfs " /proc/mounts || echo "$m"; done)
      [ -z "$missing" ] && { log "volumes mounted"; break; }
    else
      break
    fi
    sleep 2
  done
) &

echo "$(cut -d' ' -f1 /proc/uptime)" > /run/hcisim-ready
log "ready"
exec tini -- sleep infinity
