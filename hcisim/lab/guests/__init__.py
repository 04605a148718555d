"""Real VMs in the lab: qemu guests on the Gluster volumes (issue 13 groundwork).

- :mod:`.image`: the guest image (Debian kernel, busybox initramfs, static agent), cached
  by recipe hash.
"""
