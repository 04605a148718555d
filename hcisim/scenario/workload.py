"""VMs, their disks and I/O profiles, and workload phases over time."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from hcisim.scenario.base import Strict

Priority = Literal["low", "medium", "high"]
PRIORITY_RANK: dict[str, int] = {"high": 0, "medium": 1, "low": 2}


class IoProfile(Strict):
    """What a VM's disk asks of storage: either an IOPS or a MB/s demand, not both."""

    read_pct: float = Field(70.0, ge=0, le=100, description="share of I/Os that are reads")
    block_kib: PositiveFloat = 64.0
    iops: PositiveFloat | None = None
    mb_s: PositiveFloat | None = None
    queue_depth: PositiveInt = 8
    random: bool = True
    write_hot_pct: float = Field(
        100.0, gt=0, le=100,
        description="share of the disk its writes land on (the working set a VM rewrites); "
        "dirty shards while a brick is away are counted over this part only",
    )
    catch_up: bool = Field(
        False,
        description="open loop: requests arrive at the rate whatever happens (fio's "
        "rate_iops, a request queue), so the I/O a stall or slowdown held back is done "
        "afterwards, as fast as the path allows, until the disk is back on schedule (the "
        "backlog starts from zero at each change of the VM's load); false: closed loop, a "
        "stalled guest just resumes at the rate. fio runs (the labs, --target hosts) need "
        "true: fio's rate pacing always catches up",
    )

    @model_validator(mode="after")
    def _one_demand(self) -> IoProfile:
        if (self.iops is None) == (self.mb_s is None):
            raise ValueError("give exactly one of iops or mb_s")
        return self

    @property
    def demand_mb_s(self) -> float:
        """Total (read + write) demanded throughput, MB/s (10^6 B/s)."""
        if self.mb_s is not None:
            return self.mb_s
        assert self.iops is not None
        return self.iops * self.block_kib * 1024 / 1e6

    @property
    def demand_iops(self) -> float:
        if self.iops is not None:
            return self.iops
        return self.demand_mb_s * 1e6 / (self.block_kib * 1024)


class VmDisk(Strict):
    volume: str
    size_gb: PositiveFloat = 50.0
    io: str | IoProfile | None = Field(
        None, description="an io_profiles name or an inline profile; None: idle disk"
    )


class Vm(Strict):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
    host: str | None = Field(None, description="where it runs; None: the scheduler places it")
    vcpus: PositiveInt = 2
    ram_gib: PositiveFloat = 4.0
    ha: bool = False
    priority: Priority = "low"
    lease: bool = Field(True, description="HA VM lease on storage (restart without fencing)")
    hosted_engine: bool = False
    dirty_rate_mb_s: NonNegativeFloat = Field(20.0, description="page dirtying rate (migration)")
    working_set_gib: PositiveFloat | None = Field(
        None, description="RAM the guest keeps re-dirtying (bounds each migration round's "
        "dirty pages); default all of ram_gib"
    )
    touched_ram_gib: PositiveFloat | None = Field(
        None, description="RAM the guest has written (non-zero pages), all sent in "
        "migration's first pass; the rest are zero pages (9 bytes each); default all of ram_gib"
    )
    pinned_to: tuple[str, ...] = Field((), description="hosts the VM may run on (empty: any)")
    boot_s: PositiveFloat = 30.0
    disks: tuple[VmDisk, ...] = ()

    @model_validator(mode="after")
    def _memory(self) -> Vm:
        """Touched RAM and working set are parts of RAM; the working set is written, so it is
        part of the touched RAM (migration sends all touched pages first)."""
        for name in ("touched_ram_gib", "working_set_gib"):
            value = getattr(self, name)
            if value is not None and value > self.ram_gib:
                raise ValueError(f"{name}: {value:g} GiB is more than ram_gib {self.ram_gib:g}")
        if self.touched_ram_gib is not None and self.working_set_gib is not None \
                and self.working_set_gib > self.touched_ram_gib:
            raise ValueError(f"working_set_gib: {self.working_set_gib:g} GiB is more than "
                             f"touched_ram_gib {self.touched_ram_gib:g} "
                             "(a written page is touched)")
        return self


class Phase(Strict):
    """From ``start_s`` on, demand of the selected VMs is multiplied by ``load``."""

    start_s: NonNegativeFloat
    load: NonNegativeFloat = 1.0
    vms: tuple[str, ...] | None = Field(None, description="VM names; None: every VM")
