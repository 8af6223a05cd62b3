"""GPU health through NVML, extending ``repro.manifest.nvml``'s guarded reads.

Each check reads one thing per GPU; a query the driver refuses (NOT_SUPPORTED, no
permission) makes that check ``unavailable`` for that GPU, never a failure. Expectations
come from the driver itself (its default clocks and power limit, the card's maximum link
width) or from the other GPUs of the node (VBIOS, InfoROM), not from a table of SKUs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any

from repro.manifest.nvml import _import_pynvml, _text
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
_NVLINK_LINKS = 18  # NVML_NVLINK_MAX_LINKS
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


def _processes(nvml: Any, handle: Any, name: str) -> Check:
    procs = _read(lambda: list(nvml.nvmlDeviceGetComputeRunningProcesses(handle)))
    expected = "none before repro's ranks start"
    if is_unavailable(procs):
        return _na(name, procs, expected)
    # This process is not foreign (a test harness may hold a CUDA context); in a container
    # NVML may report host PIDs, so a foreign process is never confused with it there.
    procs = [p for p in procs if getattr(p, "pid", None) != os.getpid()]
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


def _nvlink(nvml: Any, handle: Any, name: str) -> Check:
    states = []
    for link in range(_NVLINK_LINKS):
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
        return Check(name, "fail", value, expected, _NVML, f"links {down} are down")
    if errors:
        shown = ", ".join(f"{k}: {v}" for k, v in list(errors.items())[:4])
        return Check(name, "warn", value, expected, _NVML, f"NVLink errors counted: {shown}")
    return Check(name, "ok", value, expected, _NVML)


def _pcie_replays(nvml: Any, handle: Any, name: str) -> Check:
    count = _read(lambda: int(nvml.nvmlDeviceGetPcieReplayCounter(handle)))
    if is_unavailable(count):
        return _na(name, count, "0")
    if count:
        return Check(
            name, "warn", count, "0", _NVML, f"{count} PCIe replays: a marginal link or riser"
        )
    return Check(name, "ok", 0, "0", _NVML)


def _fabric(nvml: Any, handle: Any, name: str) -> Check:
    expected = "registered with the NVSwitch fabric"

    def read() -> tuple[int, int]:
        info = nvml.c_nvmlGpuFabricInfo_t()
        nvml.nvmlDeviceGetGpuFabricInfo(handle, info)
        return int(info.state), int(info.status)

    reading = _read(read)
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
            "the GPU has not joined the NVSwitch fabric (check the fabric manager)",
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


def _device_checks(nvml: Any, index: int) -> tuple[list[Check], dict[str, Any]]:
    gpu = f"gpu{index}"
    handle = _read(lambda: nvml.nvmlDeviceGetHandleByIndex(index))
    if is_unavailable(handle):
        return [
            Check(
                f"{gpu}.reachable",
                "fail",
                None,
                "reachable",
                _NVML,
                f"NVML cannot reach GPU {index}: {handle.get('reason')}",
            )
        ], {}
    sm = nvml.NVML_CLOCK_SM
    checks = [
        _processes(nvml, handle, f"{gpu}.processes"),
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


def gpu_checks(expect_gpus: int | None = None, nvml: Any = None) -> list[Check]:
    """Every NVML check of every GPU; with no driver, one ``unavailable`` (or a fail when
    GPUs were expected)."""
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
        versions = []
        for index in range(count):
            device, read = _device_checks(nvml, index)
            checks += device
            versions.append(read)
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


def gpu_names(nvml: Any = None) -> list[str]:
    """The GPU model names (for the bandwidth expectation); empty without NVML."""
    nvml = nvml or guarded(_import_pynvml)
    if is_unavailable(nvml) or is_unavailable(guarded(nvml.nvmlInit)):
        return []
    try:
        count = int(nvml.nvmlDeviceGetCount())
        return [
            _text(nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(i))) for i in range(count)
        ]
    except Exception:
        return []
    finally:
        guarded(nvml.nvmlShutdown)
