"""The management plane in the lab (issue 14): what oVirt's engine, vdsm and sanlock do.

- :mod:`.sanlock`: a real sanlock daemon per lab host (unprivileged mode, own run dir, no
  watchdog), the lockspace and VM leases on a Gluster volume, qemu holding its lease.
- :mod:`.agent`: the per-host agent (the vdsm role) on the host's management address.
- :mod:`.engine`: the engine role: polls, fencing, HA restarts placed by
  :mod:`hcisim.placement`, with the model's timeouts (:mod:`hcisim.model.compute.ha`).
"""
