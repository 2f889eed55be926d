"""Tests for microlm.hardware: the probe, device and precision choice, and the allocator."""

import gc
import os
import platform
import subprocess
import sys
import threading
import time

import psutil
import pytest
import torch

from microlm import (
    CharacterTokenizer,
    MicroLM,
    ModelConfig,
    ModelTrainer,
    TrainingConfig,
    calibration,
    hardware,
    trainer,
)
from microlm.calibration import calibrate
from microlm.hardware import (
    CudaDevice,
    HardwareInfo,
    cpu_runs_bf16_lstm,
    keep_freed_memory,
    last_level_cache_bytes,
    probe,
    select_device,
)


def test_probe_reports_sane_values():
    info = probe()
    assert isinstance(info, HardwareInfo)
    assert info.logical_cores >= 1
    assert info.physical_cores is None or 1 <= info.physical_cores <= info.logical_cores
    assert info.total_ram_bytes > 0
    assert 0 < info.available_ram_bytes <= info.total_ram_bytes
    assert info.torch_version == torch.__version__
    assert info.device == select_device().type
    assert info.cpu_model.strip()
    assert len(info.cuda_devices) == (torch.cuda.device_count() if torch.cuda.is_available()
                                      else 0)


def test_summary_names_each_part_of_the_machine():
    info = HardwareInfo("Test CPU 3000", 4, 8, 16 * 2**30, 8 * 2**30, "2.9.0", (), False, "cpu")
    lines = info.summary().splitlines()
    assert lines[0] == "CPU: Test CPU 3000"
    assert "4 physical, 8 logical" in lines[1]
    assert "16.0 GiB total" in lines[2] and "8.0 GiB available" in lines[2]
    assert lines[3] == "GPU: none"
    assert "2.9.0" in lines[4] and "cpu" in lines[4]


def test_summary_lists_cuda_devices_with_memory():
    info = HardwareInfo("x", None, 2, 2**30, 2**29, "2.9.0",
                        (CudaDevice("Fake GPU", 24 * 2**30),), False, "cuda")
    assert "GPU: Fake GPU (24.0 GiB)" in info.summary()
    assert "? physical" in info.summary()


def test_the_cache_size_is_read_from_sysfs(tmp_path):
    for index, (kind, size) in enumerate([("Data", "32K"), ("Instruction", "64M"),
                                          ("Unified", "1024K"), ("Unified", "32768K")]):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        (folder / "type").write_text(f"{kind}\n")
        (folder / "size").write_text(f"{size}\n")
    assert last_level_cache_bytes(tmp_path) == 32 * 2**20
    (tmp_path / "index3" / "size").write_text("garbage\n")
    assert last_level_cache_bytes(tmp_path) == 2**20
    assert last_level_cache_bytes(tmp_path / "missing") == 0


# ---- precision ----

def test_the_bfloat16_lstm_probe_answers_alike_whatever_the_callers_grad_mode():
    """Its first caller may be a validation (no gradients): the probe's backward pass must
    not fail there and cache a wrong 'no'."""
    cpu_runs_bf16_lstm.cache_clear()
    try:
        with torch.inference_mode():
            inside = cpu_runs_bf16_lstm()
        cpu_runs_bf16_lstm.cache_clear()
        with torch.no_grad():
            without_grad = cpu_runs_bf16_lstm()
        cpu_runs_bf16_lstm.cache_clear()
        assert inside == without_grad == cpu_runs_bf16_lstm()
    finally:
        cpu_runs_bf16_lstm.cache_clear()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: no OpenMP team to start")
def test_the_bfloat16_lstm_probe_leaves_its_caller_without_an_openmp_team():
    """The app asks from its GUI thread: a team left there (its worker threads) made every
    later training run in a worker thread ~2.5x slower on a 2-core machine."""
    grown = []

    def caller() -> None:
        torch.set_num_threads(2)  # this thread's count; a team would have one more thread
        before = set(os.listdir("/proc/self/task"))
        cpu_runs_bf16_lstm.cache_clear()
        cpu_runs_bf16_lstm()
        # the check's own thread and its team end with it (the team a moment later); a
        # team of this caller's would stay as long as the caller
        deadline = time.monotonic() + 10
        while set(os.listdir("/proc/self/task")) - before and time.monotonic() < deadline:
            time.sleep(0.05)
        grown.append(len(set(os.listdir("/proc/self/task")) - before))

    try:
        thread = threading.Thread(target=caller)
        thread.start()
        thread.join()
    finally:
        cpu_runs_bf16_lstm.cache_clear()
    assert grown == [0]


def test_bfloat16_is_the_default_only_where_the_cpu_has_the_unit_and_the_lstm_runs_in_it(
        monkeypatch):
    monkeypatch.setattr(hardware, "_cpu_has_bf16", lambda: True)
    monkeypatch.setattr(hardware, "cpu_runs_bf16_lstm", lambda: False)
    assert hardware.default_precision("cpu") == "float32"  # a calibration in bf16 would fail
    monkeypatch.setattr(hardware, "cpu_runs_bf16_lstm", lambda: True)
    assert hardware.default_precision("cpu") == "bfloat16"
    monkeypatch.setattr(hardware, "_cpu_has_bf16", lambda: False)
    assert hardware.default_precision("cpu") == "float32"  # runs, but emulated: slower


def test_a_gpu_that_computes_in_bfloat16_trains_in_it_by_default(monkeypatch):
    monkeypatch.setattr(hardware, "uses_bf16", lambda device, enabled=True: True)
    assert hardware.default_precision("cuda") == "bfloat16"
    monkeypatch.setattr(hardware, "uses_bf16", lambda device, enabled=True: False)
    assert hardware.default_precision("cuda:1") == "float32"  # an older GPU
    assert hardware.default_precision("mps") == "float32"


# ---- the allocator ----

# A fresh process allocates and frees a 32 MB tensor five times (as a training step does its
# activations) and prints how many pages it faulted in. glibc maps a block of 32 MB or more
# on its own and unmaps it when freed, so every round faults all 8,192 pages in again,
# unless freed memory is kept.
_FAULTS_SCRIPT = """
import resource, sys, torch
from microlm import hardware
if sys.argv[1] == "kept":
    assert hardware.keep_freed_memory()
del_me = torch.ones(8 * 2**20); del del_me  # 32 MB: the first time faults it in anyway
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    block = torch.ones(8 * 2**20); del block
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not (sys.platform == "linux" and platform.libc_ver()[0] == "glibc"),
                    reason="the allocator setting is glibc's")
def test_kept_freed_memory_is_reused_instead_of_faulted_in_again():
    def faults(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, mode], check=True,
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "THP_MEM_ALLOC_ENABLE": "0"})
        return int(done.stdout.split()[-1])

    assert faults("untouched") >= 5 * 8_000  # glibc's default: every round faults
    # kept: one round faults, sometimes two, never the five of every round
    assert faults("kept") <= 2 * 8_192 + 64
    assert keep_freed_memory() is True


def test_training_and_calibration_keep_freed_memory(monkeypatch, one_torch_thread):
    calls = []
    monkeypatch.setattr(trainer, "keep_freed_memory", lambda: calls.append("fit"))
    monkeypatch.setattr(hardware, "keep_freed_memory", lambda: calls.append("calibrate"))
    monkeypatch.setattr(calibration, "_CALIBRATIONS", {})  # nothing calibrated in-process yet
    text = "to be or not to be, that is the question. " * 20
    tokenizer = CharacterTokenizer(text)
    model_trainer = ModelTrainer(
        MicroLM(config=ModelConfig(tokenizer.vocab_size(), 8, 16, 1, 0.0)), tokenizer,
        device="cpu", config=TrainingConfig(epochs=1, batch_size=4, sequence_length=16))
    model_trainer.prepare_data(text)
    model_trainer.train()
    assert calls == ["fit"]
    calibrate(seconds=0.05, device="cpu")
    assert calls == ["fit", "calibrate"]


def test_freed_memory_kept_for_reuse_goes_back_to_the_system_when_asked():
    if not hardware.keep_freed_memory():
        pytest.skip("needs glibc, whose allocator keeps freed memory here")
    process = psutil.Process()
    block = torch.ones(100 * 2**20 // 4)  # 100 MiB from the heap, which keeps it when freed
    del block
    gc.collect()
    kept = process.memory_info().rss
    hardware.give_back_freed_memory()
    assert kept - process.memory_info().rss > 50 * 2**20
