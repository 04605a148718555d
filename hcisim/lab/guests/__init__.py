"""Real VMs in the lab: qemu guests on the Gluster volumes (issue 13 groundwork).

- :mod:`.image`: the guest image (Debian kernel, busybox initramfs, static agent from
  ``lab/guest/``), cached by recipe hash.
- :mod:`.qemu`: one guest = one qemu in its host's network namespace, disk on that host's
  FUSE mount with oVirt's settings; pid files and their reclaim.
- :mod:`.qmp`: qemu.qmp behind a synchronous face; events with qemu's timestamps.
- :mod:`.agentlink`: the agent's heartbeat and write history, stamped on the host.
- :mod:`.vmstate`: ``vm_state`` rows from QMP events.
- :mod:`.resume`: vdsm's resume behaviour after a storage pause.
- :mod:`.migrate`: live migration between hosts' namespaces with vdsm's policy knobs.
- :mod:`.lab` and :mod:`.fleet`: the entry points for a running netns lab
  (``start_guest``, ``start_destination``, ``check_guest``, ``scenario_guests``).

See docs/guests.md.
"""
