"""GPUs: bf16 autocast only where it applies, training and generation on CUDA (skipped
without a GPU, never faked), and the preset timing that reports a device's speed."""

import contextlib

import pytest
import torch

from microlm import (
    CharacterTokenizer,
    MicroLM,
    ModelTrainer,
    TextGenerator,
    TrainingConfig,
    load_model,
    set_seed,
)
from microlm.bench import time_preset
from microlm.hardware import mixed_precision, uses_bf16

TEXT = "the quick brown fox jumps over the lazy dog. " * 40
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


def test_no_autocast_on_the_cpu():
    assert not uses_bf16("cpu")
    assert isinstance(mixed_precision("cpu"), contextlib.nullcontext)
    set_seed(0)
    trainer = ModelTrainer(MicroLM(30, 8, 16, 1), CharacterTokenizer(TEXT),
                           config=TrainingConfig(epochs=1, batch_size=4, sequence_length=16,
                                                 device="cpu"))
    trainer.prepare_data(TEXT)
    trainer.train()
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test_preset_timing_measures_training_and_generation():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        speed = time_preset("nano", "cpu", TEXT, precision="float32", train_seconds=0.5,
                            generate_chars=20)
    finally:
        torch.set_num_threads(threads)
    assert (speed.preset, speed.device, speed.precision) == ("nano", "cpu", "float32")
    assert speed.train_chars_per_second > 0 and speed.generate_chars_per_second > 0


@needs_cuda
@pytest.mark.parametrize("bf16", [True, False])
def test_training_and_generation_on_cuda(tmp_path, bf16):
    tokenizer = CharacterTokenizer(TEXT)
    set_seed(0)
    config = TrainingConfig(epochs=2, batch_size=8, sequence_length=16, device="cuda",
                            precision="bfloat16" if bf16 else "float32")
    trainer = ModelTrainer(MicroLM(tokenizer.vocab_size(), 16, 32, 2), tokenizer,
                           config=config)
    trainer.prepare_data(TEXT)
    stats = trainer.train()
    assert trainer.device.type == "cuda"
    assert stats["step_losses"][-1] < stats["step_losses"][0]
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # fp32 master
    assert uses_bf16("cuda", bf16) == (bf16 and torch.cuda.is_bf16_supported())
    trainer.save_checkpoint(tmp_path / "gpu.pt")
    model, loaded_tokenizer, _ = load_model(tmp_path / "gpu.pt")  # opens on the CPU
    assert next(model.parameters()).device.type == "cpu"
    text = TextGenerator(model.to("cuda"), loaded_tokenizer, bf16=bf16).generate("the ", 50,
                                                                                seed=0)
    assert len(text) == 54 and set(text) <= set(TEXT)
