"""GPU health through NVML, extending ``repro.manifest.nvml``'s guarded reads.

Each check reads one thing per GPU; a query the driver refuses (NOT_SUPPORTED, no
permission) makes that check ``unavailable`` for that GPU, never a failure. Expectations
come from the driver itself (its default clocks and power limit, the card's maximum link
width) or from the other GPUs of the node (VBIOS, InfoROM), not from a table of SKUs.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from repro.manifest.nvml import NvmlGpu, _import_pynvml, _text, bare_uuid, hash_uuid, nvml_gpus
from repro.manifest.probe import guarded, is_unavailable, reason_for
from repro.preflight.check import Check, Status

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
_NVLINK_LINKS = 18  # NVML_NVLINK_MAX_LINKS: slots, not all of them wired on every card
_NVLINK_LINK_COUNT = 91  # NVML_FI_DEV_NVLINK_LINK_COUNT: the links this card has wired
_FUNCTION_NOT_FOUND = 13  # NVML_ERROR_FUNCTION_NOT_FOUND: a driver older than the call
_NVLINK_COUNTERS = {0: "replay", 1: "recovery", 2: "CRC flit", 3: "CRC data"}
_FABRIC_COMPLETED = 3  # NVML_GPU_FABRIC_STATE_COMPLETED
_NVML = "NVML"


def _read(read: Callable[[], Any]) -> Any:
    return guarded(read)


def _na(name: str, reading: Any, expected: str, source: str = _NVML) -> Check:
    return Check(name, "unavailable", None, expected, source, str(reading.get("reason", reading)))


def _count(nvml: Any, expect: int | None) -> tuple[Check, int]:
    count = _read(lambda: int(nvml.nvmlDeviceGetCount()))
    expected = f"{expect}" if expect is not None else "any (give --expect-gpus N)"
    if is_unavailable(count):
        return _na("gpus.count", count, expected), 0
    if expect is not None and count != expect:
        return Check(
            "gpus.count",
            "fail",
            count,
            expected,
            "--expect-gpus",
            f"{count} GPUs visible to NVML, {expect} expected: a GPU fell off the bus or is hidden",
        ), count
    return Check("gpus.count", "ok", count, expected, "--expect-gpus" if expect else _NVML), count


def _processes(nvml: Any, handle: Any, name: str, instances: frozenset[int] | None) -> Check:
    procs = _read(lambda: list(nvml.nvmlDeviceGetComputeRunningProcesses(handle)))
    expected = "none before repro's ranks start"
    if is_unavailable(procs):
        return _na(name, procs, expected)
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
            _NVML,
            f"{len(procs)} compute process(es) already on this GPU (pid {pids}): they take memory and time",
        )
    return Check(name, "ok", 0, expected, _NVML)


def _ecc(nvml: Any, handle: Any, name: str) -> list[Check]:
    mode = _read(lambda: nvml.nvmlDeviceGetEccMode(handle))
    if is_unavailable(mode):
        return [_na(f"{name}.ecc_mode", mode, "enabled"), _na(f"{name}.ecc_errors", mode, "0")]
    enabled = bool(mode[0])
    checks = [
        Check(
            f"{name}.ecc_mode",
            "ok" if enabled else "warn",
            enabled,
            "enabled",
            _NVML,
            "" if enabled else "ECC is off: a flipped memory bit goes unnoticed",
        )
    ]
    errors = _read(
        lambda: int(nvml.nvmlDeviceGetTotalEccErrors(handle, 1, 0))
    )  # uncorrected, volatile
    if is_unavailable(errors):
        checks.append(_na(f"{name}.ecc_errors", errors, "0"))
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
    rows = _read(lambda: list(nvml.nvmlDeviceGetRemappedRows(handle)))
    if not is_unavailable(rows):
        _corrected, _uncorrected, pending, failure = rows
        if failure:
            return Check(
                name, "fail", rows, expected, _NVML, "a row remap failed: the GPU needs service"
            )
        if pending:
            return Check(
                name,
                "fail",
                rows,
                expected,
                _NVML,
                "a row remap is pending: reset the GPU to apply it",
            )
        return Check(name, "ok", rows, expected, _NVML)
    pages = _read(lambda: int(nvml.nvmlDeviceGetRetiredPagesPendingStatus(handle)))
    if is_unavailable(pages):
        return _na(name, rows, expected)
    if pages:
        return Check(
            name,
            "fail",
            pages,
            expected,
            _NVML,
            "a page retirement is pending: reset the GPU to apply it",
        )
    return Check(name, "ok", pages, expected, _NVML)


def _pcie_width(nvml: Any, handle: Any, name: str) -> Check:
    current = _read(lambda: int(nvml.nvmlDeviceGetCurrPcieLinkWidth(handle)))
    maximum = _read(lambda: int(nvml.nvmlDeviceGetMaxPcieLinkWidth(handle)))
    for reading in (current, maximum):
        if is_unavailable(reading):
            return _na(name, reading, "the card's maximum width")
    expected = f"x{maximum}"
    source = "the card's maximum (the generation drops at idle, the width must not)"
    if current < maximum:
        return Check(
            name,
            "warn",
            f"x{current}",
            expected,
            source,
            f"the link trained at x{current} of x{maximum}: reseat the card or check the slot",
        )
    return Check(name, "ok", f"x{current}", expected, source)


def _clock_events(nvml: Any, handle: Any, name: str) -> Check:
    getter = (
        getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
        or nvml.nvmlDeviceGetCurrentClocksThrottleReasons
    )
    reasons = _read(lambda: int(getter(handle)))
    expected = "no power, thermal or hardware slowdown (idle masked)"
    if is_unavailable(reasons):
        return _na(name, reasons, expected)
    active = reasons & ~_IDLE
    named = [text for bit, text in _REASON_NAMES.items() if active & bit]
    status: Status = "ok"
    if active & (_HW_SLOWDOWN | _HW_THERMAL | _HW_POWER_BRAKE):
        status = "fail"
    elif named:
        status = "warn"
    return Check(name, status, hex(reasons), expected, _NVML, ", ".join(named))


def _against_default(
    nvml: Any,
    name: str,
    current: Callable[[], Any],
    default: Callable[[], Any],
    what: str,
    unit: str,
) -> Check:
    now, base = _read(current), _read(default)
    for reading in (now, base):
        if is_unavailable(reading):
            return _na(name, reading, f"the driver's default {what}")
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


def _int_of(getter: Callable[..., Any], *args: Any) -> int:
    return int(getter(*args))


def _link_count(nvml: Any, handle: Any) -> int:
    (value,) = nvml.nvmlDeviceGetFieldValues(handle, [_NVLINK_LINK_COUNT])
    if value.nvmlReturn != 0:
        raise nvml.NVMLError(value.nvmlReturn)
    return int(value.value.uiVal)


def _nvlink(nvml: Any, handle: Any, name: str) -> Check:
    # Only the wired links count: some cards report their unwired slots as inactive, which
    # is not a link down. Without the field (older drivers), read slots until NVML refuses.
    wired = _read(lambda: _link_count(nvml, handle))
    slots = _NVLINK_LINKS if is_unavailable(wired) else wired
    states = []
    for link in range(slots):
        state = _read(partial(_int_of, nvml.nvmlDeviceGetNvLinkState, handle, link))
        if is_unavailable(state):
            break  # past the last link, or no NVLink at all
        states.append(state)
    expected = "every link up, no error counts"
    if not states:
        return Check(
            name,
            "unavailable",
            None,
            expected,
            _NVML,
            "no NVLink on this GPU (or NVML cannot read it)",
        )
    source = _NVML if is_unavailable(wired) else f"{_NVML}, {wired} links wired"
    down = [i for i, s in enumerate(states) if not s]
    errors = {}
    for link, state in enumerate(states):
        for counter, label in _NVLINK_COUNTERS.items():
            count = _read(
                partial(_int_of, nvml.nvmlDeviceGetNvLinkErrorCounter, handle, link, counter)
            )
            if state and not is_unavailable(count) and count:
                errors[f"link {link} {label}"] = count
    value = f"{len(states) - len(down)}/{len(states)} up"
    if down and len(down) < len(states):  # some up, some down: a broken link, not a PCIe card
        return Check(name, "fail", value, expected, source, f"links {down} are down")
    if errors:
        shown = ", ".join(f"{k}: {v}" for k, v in list(errors.items())[:4])
        return Check(name, "warn", value, expected, source, f"NVLink errors counted: {shown}")
    return Check(name, "ok", value, expected, source)


def _pcie_replays(nvml: Any, handle: Any, name: str) -> Check:
    count = _read(lambda: int(nvml.nvmlDeviceGetPcieReplayCounter(handle)))
    if is_unavailable(count):
        return _na(name, count, "0")
    if count:
        return Check(
            name, "warn", count, "0", _NVML, f"{count} PCIe replays: a marginal link or riser"
        )
    return Check(name, "ok", 0, "0", _NVML)


def _fabric_info(nvml: Any, handle: Any) -> tuple[int, int]:
    # pynvml hands the struct argument straight to C: it must go by reference, or NVML
    # writes through a stray pointer and the struct stays zero.
    try:
        info = nvml.c_nvmlGpuFabricInfo_v2_t()  # its constructor sets the version field
        nvml.nvmlDeviceGetGpuFabricInfoV(handle, ctypes.byref(info))
    except nvml.NVMLError as exc:
        if getattr(exc, "value", None) != _FUNCTION_NOT_FOUND:
            raise
        legacy = nvml.c_nvmlGpuFabricInfo_t()  # drivers before the versioned call
        nvml.nvmlDeviceGetGpuFabricInfo(handle, ctypes.byref(legacy))
        return int(legacy.state), int(legacy.status)
    return int(info.state), int(info.status)


def _fabric(nvml: Any, handle: Any, name: str) -> Check:
    expected = "registered with the NVSwitch fabric"
    reading = _read(lambda: _fabric_info(nvml, handle))
    if is_unavailable(reading):
        return _na(name, reading, expected)
    state, status = reading
    if state == 0:  # NVML_GPU_FABRIC_STATE_NOT_SUPPORTED: no NVSwitch fabric here
        return Check(name, "unavailable", state, expected, _NVML, "not an NVSwitch system")
    if state != _FABRIC_COMPLETED or status != 0:
        return Check(
            name,
            "fail",
            {"state": state, "status": status},
            expected,
            _NVML,
            f"the GPU has not joined the NVSwitch fabric (state {state}, status {status}): "
            "check the fabric manager",
        )
    return Check(name, "ok", state, expected, _NVML)


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
                _NVML,
                f"NVML cannot reach GPU {card.index}: {reason_for(card.error)}",
            )
        ], {}
    sm = nvml.NVML_CLOCK_SM
    checks = [
        _processes(nvml, handle, f"{gpu}.processes", instances),
        *_ecc(nvml, handle, gpu),
        _memory_repair(nvml, handle, f"{gpu}.memory_repair"),
        _pcie_width(nvml, handle, f"{gpu}.pcie_width"),
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
        _nvlink(nvml, handle, f"{gpu}.nvlink"),
        _pcie_replays(nvml, handle, f"{gpu}.pcie_replays"),
        _fabric(nvml, handle, f"{gpu}.fabric"),
    ]
    modes = {
        "persistence": _read(lambda: bool(nvml.nvmlDeviceGetPersistenceMode(handle))),
        "mig": _read(lambda: bool(nvml.nvmlDeviceGetMigMode(handle)[0])),
    }
    for mode, value in modes.items():
        if is_unavailable(value):
            checks.append(_na(f"{gpu}.{mode}_mode", value, "recorded"))
        else:
            checks.append(Check(f"{gpu}.{mode}_mode", "ok", value, "recorded", _NVML))
    versions = {
        "vbios": _read(lambda: _text(nvml.nvmlDeviceGetVbiosVersion(handle))),
        "inforom": _read(lambda: _text(nvml.nvmlDeviceGetInforomImageVersion(handle))),
        "name": _read(lambda: _text(nvml.nvmlDeviceGetName(handle))),
    }
    return checks, versions


_JOB_EXPECTED = "the GPUs CUDA lets this job use, each found by NVML"


def _described(
    nvml: Any, targets: list[tuple[NvmlGpu, frozenset[int] | None]]
) -> list[dict[str, Any]]:
    def name(gpu: NvmlGpu) -> Any:
        return _read(lambda: _text(nvml.nvmlDeviceGetName(gpu.handle))) if gpu.handle else None

    return [{"nvml_index": g.index, "name": name(g), "mig": g.mig} for g, _ in targets]


def _job_gpus(
    gpus: list[NvmlGpu], devices: Sequence[str] | None, nvml: Any
) -> tuple[list[tuple[NvmlGpu, frozenset[int] | None]], Check]:
    """The GPUs to check (with the job's MIG GPU instance ids, None for a whole GPU), and the
    check that says which they are. ``devices`` None: every GPU NVML counts."""
    if devices is None:
        every: list[tuple[NvmlGpu, frozenset[int] | None]] = [(gpu, None) for gpu in gpus]
        return every, Check(
            "gpus.job", "ok", _described(nvml, every), "every GPU NVML counts", _NVML
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
                _NVML,
                f"no GPU readings: {reason}",
            )
        ]
    try:
        count_check, count = _count(nvml, expect_gpus)
        checks = [count_check]
        gpus = _read(lambda: nvml_gpus(nvml)) if count else []
        if is_unavailable(gpus):
            return [*checks, _na("gpus.job", gpus, _JOB_EXPECTED)]
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
                _NVML,
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
