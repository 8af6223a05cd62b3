"""The GPU's links through NVML: PCIe width and replays, NVLink state and error counts,
and registration with the NVSwitch fabric. Read per GPU; a query the driver refuses makes
that check ``unavailable``, never a failure."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from functools import partial
from typing import Any

from repro.manifest.probe import guarded, is_unavailable
from repro.preflight.check import Check

_NVLINK_LINKS = 18  # NVML_NVLINK_MAX_LINKS: slots, not all of them wired on every card
_NVLINK_LINK_COUNT = 91  # NVML_FI_DEV_NVLINK_LINK_COUNT: the links this card has wired
_FUNCTION_NOT_FOUND = 13  # NVML_ERROR_FUNCTION_NOT_FOUND: a driver older than the call
_NVLINK_COUNTERS = {0: "replay", 1: "recovery", 2: "CRC flit", 3: "CRC data"}
_FABRIC_COMPLETED = 3  # NVML_GPU_FABRIC_STATE_COMPLETED
NVML_SOURCE = "NVML"


def read_nvml(read: Callable[[], Any]) -> Any:
    """One NVML reading, or why it could not be made (``repro.manifest.probe.guarded``)."""
    return guarded(read)


def unavailable(name: str, reading: Any, expected: str, source: str = NVML_SOURCE) -> Check:
    """The check ``name`` could not be made: the driver said why."""
    return Check(name, "unavailable", None, expected, source, str(reading.get("reason", reading)))


def pcie_width_check(nvml: Any, handle: Any, name: str) -> Check:
    current = read_nvml(lambda: int(nvml.nvmlDeviceGetCurrPcieLinkWidth(handle)))
    maximum = read_nvml(lambda: int(nvml.nvmlDeviceGetMaxPcieLinkWidth(handle)))
    for reading in (current, maximum):
        if is_unavailable(reading):
            return unavailable(name, reading, "the card's maximum width")
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


def _int_of(getter: Callable[..., Any], *args: Any) -> int:
    return int(getter(*args))


def _link_count(nvml: Any, handle: Any) -> int:
    (value,) = nvml.nvmlDeviceGetFieldValues(handle, [_NVLINK_LINK_COUNT])
    if value.nvmlReturn != 0:
        raise nvml.NVMLError(value.nvmlReturn)
    return int(value.value.uiVal)


def nvlink_check(nvml: Any, handle: Any, name: str) -> Check:
    # Only the wired links count: some cards report their unwired slots as inactive, which
    # is not a link down. Without the field (older drivers), read slots until NVML refuses.
    wired = read_nvml(lambda: _link_count(nvml, handle))
    slots = _NVLINK_LINKS if is_unavailable(wired) else wired
    states = []
    for link in range(slots):
        state = read_nvml(partial(_int_of, nvml.nvmlDeviceGetNvLinkState, handle, link))
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
            NVML_SOURCE,
            "no NVLink on this GPU (or NVML cannot read it)",
        )
    source = NVML_SOURCE if is_unavailable(wired) else f"{NVML_SOURCE}, {wired} links wired"
    down = [i for i, s in enumerate(states) if not s]
    errors = {}
    for link, state in enumerate(states):
        for counter, label in _NVLINK_COUNTERS.items():
            count = read_nvml(
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


def pcie_replays_check(nvml: Any, handle: Any, name: str) -> Check:
    count = read_nvml(lambda: int(nvml.nvmlDeviceGetPcieReplayCounter(handle)))
    if is_unavailable(count):
        return unavailable(name, count, "0")
    if count:
        return Check(
            name, "warn", count, "0", NVML_SOURCE, f"{count} PCIe replays: a marginal link or riser"
        )
    return Check(name, "ok", 0, "0", NVML_SOURCE)


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


def fabric_check(nvml: Any, handle: Any, name: str) -> Check:
    expected = "registered with the NVSwitch fabric"
    reading = read_nvml(lambda: _fabric_info(nvml, handle))
    if is_unavailable(reading):
        return unavailable(name, reading, expected)
    state, status = reading
    if state == 0:  # NVML_GPU_FABRIC_STATE_NOT_SUPPORTED: no NVSwitch fabric here
        return Check(name, "unavailable", state, expected, NVML_SOURCE, "not an NVSwitch system")
    if state != _FABRIC_COMPLETED or status != 0:
        return Check(
            name,
            "fail",
            {"state": state, "status": status},
            expected,
            NVML_SOURCE,
            f"the GPU has not joined the NVSwitch fabric (state {state}, status {status}): "
            "check the fabric manager",
        )
    return Check(name, "ok", state, expected, NVML_SOURCE)
