"""This machine's probe and measured speed, remembered across launches: measured once per
machine set-up (the identity calibration.machine_setup gives), then read back at once."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import psutil

from . import calibration, hardware
from .hardware import CudaDevice, HardwareInfo
from .remembered import read_json, write_json
from .speed import MachineSpeed

# How long the first-run calibration times steps: short, as a person waits for it, and
# steadied by the calibrations remembered in the last hour (calibration._steadied).
MEASURE_SECONDS = 1.5
# What a remembered profile holds. 2: profiles measured in the app's worker before the
# bfloat16 check left the GUI thread's OpenMP team out timed steps ~2.5x too slow.
PROFILE_FORMAT = 2


@dataclass(frozen=True)
class MachineProfile:
    """What this machine has and how fast it trains, with when that was measured."""

    hardware: HardwareInfo
    speed: MachineSpeed
    measured_at: float  # time.time() of the measurement
    remembered: bool = False  # True: read back from the file, nothing measured now


def profile_file() -> Path | None:
    """Where profiles are kept: beside the remembered calibrations (None: nowhere)."""
    path = calibration.calibration_file()
    return None if path is None else path.with_name("machine.json")


def measure(device: str | None = None, seconds: float = MEASURE_SECONDS) -> MachineProfile:
    """Probe this machine and time real training steps on it (a few seconds)."""
    return MachineProfile(hardware.probe(),
                          calibration.calibrate(seconds, device, measure_again=True),
                          time.time())


def remembered(device: str | None = None) -> MachineProfile | None:
    """The profile remembered for this machine set-up, its free memory read now; None where
    none is (another machine, another torch, another thread count) or the file is unreadable."""
    entry = _read().get(_key(device))
    try:
        info = dict(entry["hardware"])
        info["cuda_devices"] = tuple(CudaDevice(**gpu) for gpu in info["cuda_devices"])
        info["available_ram_bytes"] = int(psutil.virtual_memory().available)
        known = {field.name for field in fields(MachineSpeed)}
        speed = {name: value for name, value in entry["speed"].items() if name in known}
        speed["timings"] = tuple(speed.get("timings", ()))
        return MachineProfile(HardwareInfo(**info), MachineSpeed(**speed),
                              float(entry["time"]), remembered=True)
    except (KeyError, TypeError, ValueError):
        return None


def remember(profile: MachineProfile, device: str | None = None) -> None:
    """Keep `profile` for the next launch (a file that cannot be written is left alone)."""
    path = profile_file()
    if path is None:
        return
    saved = _read()
    speed = {name: value for name, value in asdict(profile.speed).items() if name != "measured"}
    saved[_key(device)] = {"time": profile.measured_at, "hardware": asdict(profile.hardware),
                           "speed": speed}
    write_json(path, saved)


def machine_profile(device: str | None = None, measure_again: bool = False) -> MachineProfile:
    """The remembered profile of this machine set-up, else (or when asked to measure
    again) a new measurement, which is then remembered."""
    if not measure_again:
        known = remembered(device)
        if known is not None:
            return known
    profile = measure(device)
    remember(profile, device)
    return replace(profile, remembered=False)


def _key(device: str | None) -> str:
    return f"{calibration.machine_setup(device)}/{os.cpu_count()} cores/profile {PROFILE_FORMAT}"


def _read() -> dict:
    path = profile_file()
    if path is None:
        return {}
    return read_json(path)
