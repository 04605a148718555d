#!/bin/sh
# Runs inside the debootstrapped root (chroot) of the node image. The recipe directory is
# copied to /tmp/hcisim-recipe first; PACKAGES names the package files to install.
# Why each step: see docs/lab-libvirt.md ("The node image").
set -eu
R=/tmp/hcisim-recipe
export DEBIAN_FRONTEND=noninteractive LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin

# No daemon may start inside the build chroot.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d

# Small initramfs: only the modules needed to find and mount the root disk.
mkdir -p /etc/initramfs-tools/conf.d
printf 'MODULES=list\nCOMPRESS=zstd\n' > /etc/initramfs-tools/conf.d/hcisim
pkgs=$(for f in $PACKAGES; do grep -v '^[[:space:]]*#' "$R/$f"; done | tr '\n' ' ')
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold $pkgs
grep -v '^[[:space:]]*#' "$R/initramfs-modules" >> /etc/initramfs-tools/modules
update-initramfs -u -k all

# The node's PID 1 (reads the per-node seed, brings up NICs, sshd, chronyd, glusterd).
install -m 755 "$R/init.sh" /sbin/hcisim-init

# sshd: keys only, root allowed (the lab is private and disposable), no DNS lookups (slow
# under emulation and there is no DNS in the lab). One ed25519 host key generated here:
# RSA key generation at boot would cost seconds of emulated CPU on every node.
rm -f /etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
cat > /etc/ssh/sshd_config.d/hcisim.conf <<'CONF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
# The harness multiplexes many sessions (deploy, polls, testinfra) over one connection per
# node, and an emulated sshd is slow to accept new ones under load.
MaxSessions 100
MaxStartups 100:30:200
CONF

# Geo-replication is not part of an HCI cluster, but glusterd runs its Python helper (gsyncd)
# at every start when it is installed: measured ~30 s of emulated CPU per node boot. Divert
# it; glusterd then logs that geo-replication is not installed and carries on.
dpkg-divert --local --rename --divert /usr/lib/x86_64-linux-gnu/glusterfs/gsyncd.hcisim-off \
  --add /usr/lib/x86_64-linux-gnu/glusterfs/gsyncd
echo 'hcisim-node' > /etc/hostname
printf '/dev/vda / ext4 defaults,errors=remount-ro 0 1\n' > /etc/fstab
passwd -l root >/dev/null

# Smaller image: nothing here is read at run time.
rm -f /usr/sbin/policy-rc.d
apt-get clean
rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/locale/* \
       /usr/share/info/* /var/cache/debconf/*-old /var/log/*.log /tmp/hcisim-recipe
