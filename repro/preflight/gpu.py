"""GPU health through NVML, extending ``repro.manifest.nvml``'s guarded reads.

Each check reads one thing per GPU; a query the driver refuses (NOT_SUPPORTED, no
permission) makes that check ``unavailable`` for that GPU, never a failure. Expectations
come from the driver itself (its default clocks and power limit, the card's maximum link
width) or from the other GPUs of the node (VBIOS, InfoROM), not from a table of SKUs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from repro.manifest.nvml import NvmlGpu, _import_pynvml, _text, bare_uuid, hash_uuid, nvml_gpus
from repro.manifest.probe import guarded, is_unavailable, reason_for
from repro.preflight.check import Check, Status
from repro.preflight.links import (
    NVML_SOURCE,
    fabric_check,
    nvlink_check,
    pcie_replays_check,
    pcie_width_check,
    read_nvml,
    unavailable,
)

# Clock event (throttle) reason bits (nvml.h, nvmlClocksEventReason*).
_IDLE = 0x1
_SW_POWER_CAP, _SW_THERMAL = 0x4, 0x20
_HW_SLOWDOWN, _HW_THERMAL, _HW_POWER_BRAKE = 0x8, 0x40, 0x80
_REASON_NAMES = {
    _SW_POWER_CAP: "software power cap",
    _HW_SLOWDOWN: "hardware slowdown",
    _SW_THERMAL: "software thermal slowdown",
    _HW_THERMAL: "hardware thermal slowdown",
    _HW_POWER_BRAKE: "hardware power brake",
}


def _count(nvml: Any, expect: int | None) -> tuple[Check, int]:
    count = read_nvml(lambda: int(nvml.nvmlDeviceGetCount()))
    expected = f"{expect}" if expect is not None else "any (give --expect-gpus N)"
    if is_unavailable(count):
        return unavailable("gpus.count", count, expected), 0
    if expect is not None and count != expect:
        return Check(
            "gpus.count",
            "fail",
            count,
            expected,
            "--expect-gpus",
            f"{count} GPUs visible to NVML, {expect} expected: a GPU fell off the bus or is hidden",
        ), count
    return Check(
        "gpus.count", "ok", count, expected, "--expect-gpus" if expect else NVML_SOURCE
    ), count


def _processes(nvml: Any, handle: Any, name: str, instances: frozenset[int] | None) -> Check:
    procs = read_nvml(lambda: list(nvml.nvmlDeviceGetComputeRunningProcesses(handle)))
    expected = "none before repro's ranks start"
    if is_unavailable(procs):
        return unavailable(name, procs, expected)
    # This process is not foreign (a test harness may hold a CUDA context); in a container
    # NVML may report host PIDs, so a foreign process is never confused with it there.
    procs = [p for p in procs if getattr(p, "pid", None) != os.getpid()]
    if instances is not None:  # MIG: other jobs on other slices of the card share nothing
        procs = [p for p in procs if getattr(p, "gpuInstanceId", None) in instances]
    if procs:
        pids = ", ".join(str(getattr(p, "pid", "?")) for p in procs[:5])
        return Check(
            name,
            "fail",
            len(procs),
            expected,
            NVML_SOURCE,
            f"{len(procs)} compute process(es) already on this GPU (pid {pids}): they take memory and time",
        )
    return Check(name, "ok", 0, expected, NVML_SOURCE)


def _ecc(nvml: Any, handle: Any, name: str) -> list[Check]:
    mode = read_nvml(lambda: nvml.nvmlDeviceGetEccMode(handle))
    if is_unavailable(mode):
        return [
            unavailable(f"{name}.ecc_mode", mode, "enabled"),
            unavailable(f"{name}.ecc_errors", mode, "0"),
        ]
    enabled = bool(mode[0])
    checks = [
        Check(
            f"{name}.ecc_mode",
            "ok" if enabled else "warn",
            enabled,
            "enabled",
            NVML_SOURCE,
            "" if enabled else "ECC is off: a flipped memory bit goes unnoticed",
        )
    ]
    errors = read_nvml(
        lambda: int(nvml.nvmlDeviceGetTotalEccErrors(handle, 1, 0))
    )  # uncorrected, volatile
    if is_unavailable(errors):
        checks.append(unavailable(f"{name}.ecc_errors", errors, "0"))
    elif errors:
        checks.append(
            Check(
                f"{name}.ecc_errors",
                "fail",
                errors,
                "0",
                "NVML, since the driver loaded",
                f"{errors} uncorrected ECC errors: drain the node and reset the GPU",
            )
        )
    else:
        checks.append(Check(f"{name}.ecc_errors", "ok", 0, "0", "NVML, since the driver loaded"))
    return checks


def _memory_repair(nvml: Any, handle: Any, name: str) -> Check:
    expected = "no pending or failed row remap (retired page on older GPUs)"
    rows = read_nvml(lambda: list(nvml.nvmlDeviceGetRemappedRows(handle)))
    if not is_unavailable(rows):
        _corrected, _uncorrected, pending, failure = rows
        if failure:
            return Check(
                name,
                "fail",
                rows,
                expected,
                NVML_SOURCE,
                "a row remap failed: the GPU needs service",
            )
        if pending:
            return Check(
                name,
                "fail",
                rows,
                expected,
                NVML_SOURCE,
                "a row remap is pending: reset the GPU to apply it",
            )
        return Check(name, "ok", rows, expected, NVML_SOURCE)
    pages = read_nvml(lambda: int(nvml.nvmlDeviceGetRetiredPagesPendingStatus(handle)))
    if is_unavailable(pages):
        return unavailable(name, rows, expected)
    if pages:
        return Check(
            name,
            "fail",
            pages,
            expected,
            NVML_SOURCE,
            "a page retirement is pending: reset the GPU to apply it",
        )
    return Check(name, "ok", pages, expected, NVML_SOURCE)


def _clock_events(nvml: Any, handle: Any, name: str) -> Check:
    getter = (
        getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
        or nvml.nvmlDeviceGetCurrentClocksThrottleReasons
    )
    reasons = read_nvml(lambda: int(getter(handle)))
    expected = "no power, thermal or hardware slowdown (idle masked)"
    if is_unavailable(reasons):
        return unavailable(name, reasons, expected)
    active = reasons & ~_IDLE
    named = [text for bit, text in _REASON_NAMES.items() if active & bit]
    status: Status = "ok"
    if active & (_HW_SLOWDOWN | _HW_THERMAL | _HW_POWER_BRAKE):
        status = "fail"
    elif named:
        status = "warn"
    return Check(name, status, hex(reasons), expected, NVML_SOURCE, ", ".join(named))


def _against_default(
    nvml: Any,
    name: str,
    current: Callable[[], Any],
    default: Callable[[], Any],
    what: str,
    unit: str,
) -> Check:
    now, base = read_nvml(current), read_nvml(default)
    for reading in (now, base):
        if is_unavailable(reading):
            return unavailable(name, reading, f"the driver's default {what}")
    expected, source = f"{base} {unit}", f"the driver's default {what}"
    if now != base:
        return Check(
            name,
            "warn",
            f"{now} {unit}",
            expected,
            source,
            f"{what} {now} {unit}, the driver's default is {base} {unit}: someone changed it",
        )
    return Check(name, "ok", f"{now} {unit}", expected, source)


def _same_on_every_gpu(field: str, values: list[Any]) -> Check:
    read = [v for v in values if not is_unavailable(v)]
    expected, source = "the same on every GPU", "the node's other GPUs"
    if not read:
        return Check(
            f"gpus.{field}",
            "unavailable",
            None,
            expected,
            source,
            str(values[0].get("reason")) if values else "no GPU",
        )
    if len(set(read)) > 1:
        return Check(
            f"gpus.{field}",
            "warn",
            sorted(set(read)),
            expected,
            source,
            f"the GPUs carry {len(set(read))} different {field} versions: update them together",
        )
    return Check(f"gpus.{field}", "ok", read[0], expected, source)


def _device_checks(
    nvml: Any, card: NvmlGpu, instances: frozenset[int] | None
) -> tuple[list[Check], dict[str, Any]]:
    gpu, handle = f"gpu{card.index}", card.handle
    if card.error is not None:
        return [
            Check(
                f"{gpu}.reachable",
                "fail",
                None,
                "reachable",
                NVML_SOURCE,
                f"NVML cannot reach GPU {card.index}: {reason_for(card.error)}",
            )
        ], {}
    sm = nvml.NVML_CLOCK_SM
    checks = [
        _processes(nvml, handle, f"{gpu}.processes", instances),
        *_ecc(nvml, handle, gpu),
        _memory_repair(nvml, handle, f"{gpu}.memory_repair"),
        pcie_width_check(nvml, handle, f"{gpu}.pcie_width"),
        _clock_events(nvml, handle, f"{gpu}.clock_events"),
        _against_default(
            nvml,
            f"{gpu}.application_clock",
            lambda: int(nvml.nvmlDeviceGetApplicationsClock(handle, sm)),
            lambda: int(nvml.nvmlDeviceGetDefaultApplicationsClock(handle, sm)),
            "SM application clock",
            "MHz",
        ),
        _against_default(
            nvml,
            f"{gpu}.power_limit",
            lambda: int(nvml.nvmlDeviceGetPowerManagementLimit(handle)) // 1000,
            lambda: int(nvml.nvmlDeviceGetPowerManagementDefaultLimit(handle)) // 1000,
            "power limit",
            "W",
        ),
        nvlink_check(nvml, handle, f"{gpu}.nvlink"),
        pcie_replays_check(nvml, handle, f"{gpu}.pcie_replays"),
        fabric_check(nvml, handle, f"{gpu}.fabric"),
    ]
    modes = {
        "persistence": read_nvml(lambda: bool(nvml.nvmlDeviceGetPersistenceMode(handle))),
        "mig": read_nvml(lambda: bool(nvml.nvmlDeviceGetMigMode(handle)[0])),
    }
    for mode, value in modes.items():
        if is_unavailable(value):
            checks.append(unavailable(f"{gpu}.{mode}_mode", value, "recorded"))
        else:
            checks.append(Check(f"{gpu}.{mode}_mode", "ok", value, "recorded", NVML_SOURCE))
    versions = {
        "vbios": read_nvml(lambda: _text(nvml.nvmlDeviceGetVbiosVersion(handle))),
        "inforom": read_nvml(lambda: _text(nvml.nvmlDeviceGetInforomImageVersion(handle))),
        "name": read_nvml(lambda: _text(nvml.nvmlDeviceGetName(handle))),
    }
    return checks, versions


_JOB_EXPECTED = "the GPUs CUDA lets this job use, each found by NVML"


def _described(
    nvml: Any, targets: list[tuple[NvmlGpu, frozenset[int] | None]]
) -> list[dict[str, Any]]:
    def name(gpu: NvmlGpu) -> Any:
        return read_nvml(lambda: _text(nvml.nvmlDeviceGetName(gpu.handle))) if gpu.handle else None

    return [{"nvml_index": g.index, "name": name(g), "mig": g.mig} for g, _ in targets]


def _job_gpus(
    gpus: list[NvmlGpu], devices: Sequence[str] | None, nvml: Any
) -> tuple[list[tuple[NvmlGpu, frozenset[int] | None]], Check]:
    """The GPUs to check (with the job's MIG GPU instance ids, None for a whole GPU), and the
    check that says which they are. ``devices`` None: every GPU NVML counts."""
    if devices is None:
        every: list[tuple[NvmlGpu, frozenset[int] | None]] = [(gpu, None) for gpu in gpus]
        return every, Check(
            "gpus.job", "ok", _described(nvml, every), "every GPU NVML counts", NVML_SOURCE
        )
    by_uuid: dict[str, tuple[NvmlGpu, Any]] = {}
    for gpu in gpus:
        if gpu.error is None:
            by_uuid[bare_uuid(gpu.uuid)] = (gpu, None)
            by_uuid.update({bare_uuid(uuid): (gpu, mig) for uuid, mig in gpu.instances})
    chosen: dict[int, tuple[NvmlGpu, set[int] | None]] = {}
    missing = []
    for device in devices:
        found = by_uuid.get(bare_uuid(device))
        if found is None:
            missing.append(device)
            continue
        gpu, mig = found
        _, instances = chosen.setdefault(gpu.index, (gpu, None if mig is None else set()))
        if mig is not None and instances is not None:
            instances.add(int(nvml.nvmlDeviceGetGpuInstanceId(mig)))
    targets = [(g, None if i is None else frozenset(i)) for g, i in chosen.values()]
    value = _described(nvml, targets)
    source = "CUDA's devices for this job (CUDA_VISIBLE_DEVICES), matched by UUID"
    if missing:
        hidden = [g.index for g in gpus if g.error is not None]
        why = f"; NVML refused GPU(s) {hidden}" if hidden else ""
        hashes = ", ".join(hash_uuid(bare_uuid(d)) for d in missing)
        return targets, Check(
            "gpus.job",
            "fail",
            value,
            _JOB_EXPECTED,
            source,
            f"CUDA uses {len(missing)} device(s) NVML cannot find (uuid sha256 {hashes}){why}",
        )
    return targets, Check("gpus.job", "ok", value, _JOB_EXPECTED, source)


def gpu_checks(
    expect_gpus: int | None = None, nvml: Any = None, devices: Sequence[str] | None = None
) -> list[Check]:
    """NVML's checks of the GPUs this job will use; with no driver, one ``unavailable`` (or a
    fail when GPUs were expected).

    ``devices``: the job's devices by UUID as CUDA names them (``GPU-``/``MIG-`` or torch's
    bare form); a GPU outside them (another job's, or hidden by the job's cgroup) is not
    checked. None checks every GPU NVML counts, as a whole-node check outside a job does.
    """
    if nvml is None:
        nvml = guarded(_import_pynvml)
    reason = nvml.get("reason") if is_unavailable(nvml) else None
    if reason is None:
        try:
            nvml.nvmlInit()
        except Exception as exc:
            reason = f"NVML cannot be initialised ({reason_for(exc)})"
    if reason is not None:
        status: Status = "fail" if expect_gpus else "unavailable"
        return [
            Check(
                "gpus.count",
                status,
                0,
                str(expect_gpus or "any"),
                NVML_SOURCE,
                f"no GPU readings: {reason}",
            )
        ]
    try:
        count_check, count = _count(nvml, expect_gpus)
        checks = [count_check]
        gpus = read_nvml(lambda: nvml_gpus(nvml)) if count else []
        if is_unavailable(gpus):
            return [*checks, unavailable("gpus.job", gpus, _JOB_EXPECTED)]
        targets, job = _job_gpus(gpus, devices, nvml)
        checks.append(job)
        versions = []
        for gpu, instances in targets:
            device, read = _device_checks(nvml, gpu, instances)
            checks += device
            versions.append(read)
        if targets:
            for field in ("vbios", "inforom"):
                checks.append(_same_on_every_gpu(field, [v.get(field) for v in versions if v]))
        checks.append(
            Check(
                "gpus.xid",
                "unavailable",
                None,
                "no Xid errors",
                NVML_SOURCE,
                "NVML reports Xid errors only to a live event subscriber; read `dmesg | grep -i xid`",
            )
        )
        return checks
    finally:
        guarded(nvml.nvmlShutdown)


def job_gpu_names(checks: Sequence[Check]) -> list[str]:
    """The NVML names of the GPUs this job uses, from the ``gpus.job`` check (for the
    bandwidth expectation); empty when none were found."""
    job = next((c for c in checks if c.name == "gpus.job"), None)
    if job is None or not isinstance(job.value, list):
        return []
    return [
        str(d["name"]) for d in job.value if isinstance(d, dict) and isinstance(d.get("name"), str)
    ]
