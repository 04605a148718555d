"""The ``libvirt`` lab backend: node VMs from a debootstrapped image, faults through libvirt.

Registered in :mod:`hcisim.lab.backend` as ``libvirt``; see docs/lab-libvirt.md.
"""

from hcisim.lab.libvirt.backend import LibvirtBackend

__all__ = ["LibvirtBackend"]
