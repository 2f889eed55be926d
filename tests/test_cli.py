"""The `microlm` command line: train, resume, generate, inspect, probe and its error messages."""

import errno
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading

import pytest
import torch

from microlm import ModelTrainer, cli, load_model, thread_watch
from microlm import checkpoint as checkpoint_module
from microlm.checkpoint import output_lock

TINY = ["--embedding-dim", "8", "--hidden-dim", "16", "--num-layers", "1", "--dropout", "0",
        "--sequence-length", "16", "--batch-size", "8"]
SENTENCES = ("the quick brown fox jumps over the lazy dog. ", "a stitch in time saves nine. ",
             "all that glitters is not gold. ", "where there is smoke there is fire. ")
TEXT = "".join(SENTENCES[i % 4] for i in range(100))  # 3,525 characters
TRAIN_CHARS = len(TEXT) - int(0.1 * len(TEXT))  # the default 10 % is held out
STEPS_PER_EPOCH = (TRAIN_CHARS - 1) // (8 * 16)  # batches of 8 windows of 16 characters


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "proverbs.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def checkpoint(text_file, tmp_path_factory):
    output = tmp_path_factory.mktemp("model") / "proverbs.pt"
    status = cli.main(["train", str(text_file), *TINY, "--epochs", "1", "--seed", "3",
                       "--output", str(output)])
    assert status == 0
    return output


def run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_help_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "microlm", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0
    for command in ("probe", "train", "generate", "inspect", "bench"):
        assert command in result.stdout


def test_every_train_option_is_explained(capsys):
    status, out, _ = run(capsys, "train", "--help")
    assert status == 0
    for option in ("--preset", "--time-budget", "--resume", "--patience", "--val-fraction",
                   "--checkpoint-every", "--checkpoint-minutes"):
        assert option in out
    assert "passes over the training text" in out


def test_train_saves_a_checkpoint_with_one_epoch(checkpoint, text_file, capsys):
    model, tokenizer, metadata = load_model(checkpoint)
    assert metadata["step"] == STEPS_PER_EPOCH == 24
    assert model.config.hidden_dim == 16 and model.config.num_layers == 1
    assert tokenizer.vocab_size() == len(set(text_file.read_text()))
    assert metadata["best_val_loss"] is not None


def test_an_output_layer_with_hidden_units_trains_saves_reloads_and_generates(text_file,
                                                                             tmp_path, capsys):
    output = tmp_path / "deep.pt"
    status, out, err = run(capsys, "train", text_file, *TINY, "--output-hidden-dim", "24",
                           "--epochs", "1", "--output", output)
    assert status == 0, err
    assert "output layer 24 units" in err  # the model line goes to stderr
    model, _, _ = load_model(output)
    assert model.config.output_hidden_dim == 24
    assert model.head[0].weight.shape == (24, 16)
    status, out, err = run(capsys, "generate", output, "--prompt", "the ", "--length", "20",
                           "--seed", "1")
    assert status == 0, err
    assert out.startswith("the ") and len(out.strip()) >= 20
    status, _, err = run(capsys, "train", text_file, "--output-hidden-dim", "-3")
    assert status == 2 and "'-3' is not a whole number >= 0" in err


def test_weight_decay_is_a_training_flag(text_file, tmp_path, capsys):
    output = tmp_path / "decayed.pt"
    status, _, err = run(capsys, "train", text_file, *TINY, "--weight-decay", "0.25",
                         "--epochs", "1", "--output", output)
    assert status == 0, err
    assert load_model(output)[2]["training_config"]["weight_decay"] == 0.25
    status, _, err = run(capsys, "train", text_file, "--weight-decay", "-0.1")
    assert status == 2 and "'-0.1' is not a number in [0, 10]" in err


def test_ema_decay_is_a_training_flag(text_file, tmp_path, capsys):
    output = tmp_path / "averaged.pt"
    status, _, err = run(capsys, "train", text_file, *TINY, "--ema-decay", "0", "--epochs", "1",
                         "--output", output)
    assert status == 0, err
    metadata = load_model(output)[2]
    assert metadata["training_config"]["ema_decay"] == 0.0
    assert metadata["training_state"]["average"] is None  # no average kept or saved
    status, _, err = run(capsys, "train", text_file, "--ema-decay", "1")
    assert status == 2 and "'1' is not a number in [0, 1)" in err


def test_train_reports_best_loss_and_checkpoint(text_file, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = run(capsys, "train", text_file, *TINY, "--epochs", "1")
    assert status == 0
    assert "Best validation loss:" in out
    assert f"Checkpoint saved to {tmp_path / 'proverbs.pt'}" in out  # default: <stem>.pt here
    assert (tmp_path / "proverbs.pt").exists()
    assert "warning: Only 3,525 characters" in err  # the corpus's own warning is shown
    assert "val loss" in err  # the periodic validation line


def test_same_seed_trains_the_same_model(text_file, checkpoint, tmp_path, capsys):
    again = tmp_path / "again.pt"
    assert run(capsys, "train", text_file, *TINY, "--epochs", "1", "--seed", "3", "-o",
               again)[0] == 0
    first, _, _ = load_model(checkpoint)
    second, _, _ = load_model(again)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name]), name


def test_ctrl_c_saves_and_resume_finishes_the_same_run(text_file, tmp_path, capsys, monkeypatch):
    straight = tmp_path / "straight.pt"
    assert run(capsys, "train", text_file, *TINY, "--epochs", "2", "-o", straight)[0] == 0

    interrupted = tmp_path / "interrupted.pt"
    original_step = cli.ProgressLine.step

    def press_ctrl_c_at_step_10(self, event):
        original_step(self, event)
        if event.step == 10:
            signal.raise_signal(signal.SIGINT)  # handled by the CLI as a clean stop

    monkeypatch.setattr(cli.ProgressLine, "step", press_ctrl_c_at_step_10)
    status, out, err = run(capsys, "train", text_file, *TINY, "--epochs", "2", "-o",
                           interrupted)
    monkeypatch.undo()
    assert status == cli.INTERRUPTED
    assert "Stopping after this step" in err
    assert f"Checkpoint saved to {interrupted}" in out
    assert load_model(interrupted)[2]["step"] == 10

    status, out, err = run(capsys, "train", text_file, "--resume", interrupted)
    assert status == 0, err
    assert "Resuming" in err
    _, _, resumed = load_model(interrupted)  # default output: the resumed file
    _, _, reference = load_model(straight)
    assert resumed["step"] == reference["step"] == 2 * STEPS_PER_EPOCH
    assert resumed["history"]["step_losses"] == reference["history"]["step_losses"]


def test_generate_with_a_seed_repeats_exactly(checkpoint, capsys):
    args = ("generate", checkpoint, "--prompt", "the ", "--length", "40", "--seed", "7",
            "--temperature", "1.0", "--top-k", "5")
    status, first, err = run(capsys, *args)
    assert status == 0, err
    status, second, _ = run(capsys, *args)
    assert first == second
    assert first.startswith("the ")
    assert len(first.rstrip("\n")) >= 44 - first.count("\n")  # prompt + 40 new characters


def test_inspect_shows_layers_health_and_history(checkpoint, capsys):
    pytest.importorskip("microlm.inspection")
    status, out, err = run(capsys, "inspect", checkpoint)
    assert status == 0, err
    model, _, _ = load_model(checkpoint)
    total = sum(p.numel() for p in model.parameters())
    assert f"Parameters: {total:,}" in out
    assert "embedding.weight" in out
    # read as a person: layers numbered from 1, the output layer by its name, MiB
    assert "LSTM layer 1, weights on its input" in out and "lstm.weight_ih_l0" in out
    assert "LSTM layer 1," in out and "LSTM layer 0" not in out
    assert "output layer, weights" in out and " MiB " in out
    assert "Health score:" in out
    assert f"steps: {STEPS_PER_EPOCH}" in out
    assert "best validation loss:" in out


def test_probe_lists_every_preset(capsys):
    status, out, _ = run(capsys, "probe", "--seconds", "0.2")
    assert status == 0
    for name in ("nano", "small", "medium", "large", "xlarge"):
        assert f"\n  {name} " in out
    assert "chars/s" in out


def test_time_budget_alone_picks_a_model_and_stops_on_time(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    budget = 4.0
    status, out, err = run(capsys, "train", "--sample", "python-documentation",
                           "--time-budget", budget)
    assert status == 0, err
    assert "Recommended for 4 s: hidden size" in err  # the recommendation, in one line
    assert "Time budget of 4 s reached" in out  # the run was ended by the clock
    _, _, metadata = load_model(tmp_path / "python-documentation.pt")
    assert 0 < metadata["history"]["training_time"] <= budget


def test_the_whole_command_ends_within_its_budget(text_file, tmp_path, capsys):
    """The one wall-clock check of a budget: 3 s, everything included (set-up, calibration,
    training, the last validation, the checkpoint), within a second more, wide enough for
    a loaded machine."""
    import time

    budget = 3.0
    start = time.monotonic()
    status, out, err = run(capsys, "train", text_file, *TINY, "--time-budget", budget,
                           "--output", tmp_path / "budget.pt")
    took = time.monotonic() - start
    assert status == 0, err
    assert "Time budget of 3 s reached" in out  # ended by the clock, not by the epochs
    _, _, metadata = load_model(tmp_path / "budget.pt")
    assert 0 < metadata["history"]["training_time"] <= budget
    assert took <= budget + 1.0


def test_the_training_text_is_never_overwritten(text_file, checkpoint, tmp_path, capsys):
    text = text_file.read_bytes()
    saved = checkpoint.read_bytes()
    link = tmp_path / "link.txt"
    link.symlink_to(text_file)
    for argv in ([*TINY, "-o", text_file], ["--resume", checkpoint, "-o", text_file],
                 [*TINY, "-o", link]):
        status, out, err = run(capsys, "train", text_file, "--epochs", "1", *argv)
        assert status == 2
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert "is the text being trained on" in err and "Choose another file" in err
    assert text_file.read_bytes() == text and checkpoint.read_bytes() == saved


def test_a_file_that_is_not_a_checkpoint_is_never_overwritten(text_file, tmp_path, capsys):
    notes = tmp_path / "notes.md"
    notes.write_text("my notes\n")
    status, out, err = run(capsys, "train", text_file, *TINY, "--epochs", "1", "-o", notes)
    assert status == 2
    assert err == (f"error: {notes} exists and is not a MicroLM checkpoint, so it was left as "
                   f"it is. Choose another file to save the model to.\n")
    assert notes.read_text() == "my notes\n"


def test_an_output_folder_without_write_permission_is_refused_before_training(
        text_file, tmp_path, capsys, monkeypatch):
    # Simulated: as root, a read-only permission does not stop writing.
    def no_permission(target):
        raise PermissionError(errno.EACCES, "Permission denied",
                              str(target.parent / f".{target.name}.abcd1234.tmp"))

    monkeypatch.setattr(checkpoint_module, "_create_temporary", no_permission)
    output = tmp_path / "models" / "model.pt"
    status, out, err = run(capsys, "train", text_file, *TINY, "--epochs", "1", "-o", output)
    assert status == 2
    assert err.endswith(f"error: Cannot save the model to {output}: no permission to write in "
                        f"{output.parent}. Choose another place.\n")
    assert "val loss" not in err and out == ""  # no training happened


def test_a_disk_without_room_is_refused_before_training(text_file, tmp_path, capsys,
                                                        monkeypatch):
    monkeypatch.setattr(checkpoint_module.shutil, "disk_usage",
                        lambda folder: checkpoint_module.shutil._ntuple_diskusage(
                            10**9, 10**9 - 1000, 1000))
    status, out, err = run(capsys, "train", text_file, *TINY, "--epochs", "1", "-o",
                           tmp_path / "model.pt")
    assert status == 2
    assert "the disk has 1,000 bytes free and the checkpoint needs about" in err
    assert "val loss" not in err and out == ""


@pytest.mark.parametrize("when", ["at the end", "periodic"])
def test_a_model_that_could_not_be_saved_is_kept_in_the_temporary_folder(
        when, text_file, tmp_path, capsys, monkeypatch):
    temporary = tmp_path / "temporary"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    real_save, calls = torch.save, []

    def disk_full_once(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) == 1:  # the save to --output; the one that keeps the model works
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos "
                               "4608 vs 4506")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_full_once)
    output = tmp_path / "model.pt"
    epochs = ["--epochs", "1"] if when == "at the end" else ["--epochs", "3",
                                                             "--checkpoint-every", "1"]
    status, out, err = run(capsys, "train", text_file, *TINY, *epochs, "-o", output)
    assert status == 1
    [kept] = temporary.iterdir()
    assert err.splitlines()[-1] == (
        f"error: Could not save the model to {output}: the disk is full. The model was kept "
        f"in {kept} instead: move it where you want it (it also resumes with --resume).")
    assert ".tmp" not in err and "Checkpoint saved" not in out
    assert load_model(kept)[2]["step"] == STEPS_PER_EPOCH
    assert not output.exists()


def test_a_second_run_saving_to_the_same_file_is_refused(text_file, tmp_path, capsys):
    output = tmp_path / "shared.pt"
    with output_lock(output):  # a run in progress (this process) saves there
        status, out, err = run(capsys, "train", text_file, *TINY, "--epochs", "1", "-o",
                               output)
    assert status == 2
    assert f"error: Another training run (process {os.getpid()}) is saving to {output}." in err
    assert not output.exists()
    status, out, err = run(capsys, "train", text_file, *TINY, "--epochs", "1", "-o", output)
    assert status == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.pt"]  # the lock is gone


def test_checkpoint_every_and_minutes_save_during_training(text_file, tmp_path, capsys,
                                                         monkeypatch):
    output = tmp_path / "periodic.pt"
    saved_steps = []
    original = ModelTrainer.save_checkpoint

    def save_and_record(self, path, **metadata):
        written = original(self, path, **metadata)
        saved_steps.append(load_model(path)[2]["step"])
        return written

    monkeypatch.setattr(ModelTrainer, "save_checkpoint", save_and_record)
    status, _, err = run(capsys, "train", text_file, *TINY, "--epochs", "3",
                         "--checkpoint-every", "1", "--checkpoint-minutes", "30", "-o", output)
    assert status == 0, err
    assert saved_steps == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH, 3 * STEPS_PER_EPOCH]
    config = load_model(output)[2]["training_config"]
    assert config["checkpoint_every"] == 1 and config["checkpoint_minutes"] == 30.0
    for flag, value, problem in (("--checkpoint-minutes", "0", "'0' is not a number > 0"),
                                 ("--checkpoint-every", "-1", "'-1' is not a whole number >= 0")):
        status, _, err = run(capsys, "train", text_file, flag, value)
        assert status == 2 and problem in err


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_save_and_exit_like_ctrl_c(name, text_file, tmp_path):
    signum = getattr(signal, name, None)
    if signum is None or signal.getsignal(signum) == signal.SIG_IGN:
        pytest.skip(f"{name} is not available or is ignored here (nohup)")
    output = tmp_path / "signalled.pt"
    process = subprocess.Popen(
        [sys.executable, "-m", "microlm", "train", str(text_file), *TINY, "--epochs", "1000",
         "--eval-interval", "3", "--threads", "1", "-o", str(output)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, process.kill)  # a guard against a hang, not a timing
    watchdog.start()
    try:
        for line in process.stderr:  # wait until it trains: a validation line
            if line.startswith("step "):
                break
        process.send_signal(signum)
        out, err = process.communicate()
    finally:
        watchdog.cancel()
    assert process.returncode == cli.INTERRUPTED, err
    assert f"{name} received. Stopping after this step and saving" in err
    assert "Training stopped" in out and f"Checkpoint saved to {output}" in out
    assert load_model(output)[2]["step"] > 0


@pytest.mark.skipif(not hasattr(os, "forkpty"), reason="needs a pseudo-terminal")
def test_closing_the_terminal_stops_saves_and_exits_like_ctrl_c(text_file, tmp_path):
    """The terminal goes away (SIGHUP, and writing to it fails from then on): the run still
    stops after a step and saves."""
    import pty
    import re
    import select

    output = tmp_path / "hung-up.pt"
    argv = [sys.executable, "-m", "microlm", "train", str(text_file), *TINY, "--epochs",
            "1000", "--eval-interval", "3", "--threads", "1", "-o", str(output)]
    pid, terminal = pty.fork()
    if pid == 0:  # the child: its terminal is the pseudo-terminal
        os.execv(sys.executable, argv)
    watchdog = threading.Timer(120, os.kill, (pid, signal.SIGKILL))  # a guard, not a timing
    watchdog.start()
    try:
        shown = b""
        while not re.search(rb"[\r\n]step ", shown):  # it trains: a validation line
            if not select.select([terminal], [], [], 120)[0]:
                break
            try:
                shown += os.read(terminal, 4096)
            except OSError:  # the child ended
                break
        os.close(terminal)  # hang up
        _, status = os.waitpid(pid, 0)
    finally:
        watchdog.cancel()
    assert os.waitstatus_to_exitcode(status) == cli.INTERRUPTED, shown.decode()[-500:]
    assert load_model(output)[2]["step"] > 0


def test_a_tiny_temperature_is_greedy(checkpoint, capsys):
    args = ("generate", checkpoint, "--prompt", "the ", "--length", "30", "--seed", "2")
    status, greedy, err = run(capsys, *args, "--temperature", "0")
    assert status == 0, err
    status, tiny, err = run(capsys, *args, "--temperature", "1e-320")
    assert status == 0, err
    assert tiny == greedy


def test_a_symlink_loop_is_named_as_one(text_file, tmp_path, capsys):
    loop = tmp_path / "loop.pt"
    loop.symlink_to(loop)
    for argv in (["generate", loop], ["train", text_file, "--resume", loop],
                 ["train", text_file, *TINY, "-o", loop]):
        status, _, err = run(capsys, *argv)
        assert status == 2
        assert f"error: {loop} is a symlink loop" in err and "does not exist" not in err


def test_sample_names_are_forgiving():
    assert cli.sample_name("documentation") == cli.sample_name("Python documentation")
    assert cli.sample_name("python-source-code") == "Python source code"


def _bad_inputs(text_file, checkpoint, tmp_path):
    binary = tmp_path / "image.bin"
    binary.write_bytes(bytes(range(256)) * 20)
    other_text = tmp_path / "other.txt"
    other_text.write_text("Zebras! Quartz? " * 300)
    short = tmp_path / "short.txt"
    short.write_text("a")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    cases = {
        "missing file": ["train", tmp_path / "missing.txt"],
        "binary file": ["train", binary],
        "bad checkpoint (generate)": ["generate", garbage],
        "bad checkpoint (inspect)": ["inspect", text_file],
        "missing checkpoint": ["generate", tmp_path / "missing.pt"],
        "unknown preset": ["train", text_file, "--preset", "huge"],
        "bad number": ["train", text_file, "--epochs", "ten"],
        "negative number": ["train", text_file, "--learning-rate", "-1"],
        "bad temperature": ["generate", checkpoint, "--temperature", "hot"],
        "unknown sample": ["train", "--sample", "poetry"],
        "no corpus": ["train"],
        "unknown prompt characters": ["generate", checkpoint, "--prompt", "Zürich €"],
        "resume with a new shape": ["train", text_file, "--resume", checkpoint,
                                    "--hidden-dim", "64"],
        "unknown option": ["train", text_file, "--batching-typo"],
        "resume with another text": ["train", other_text, "--resume", checkpoint],
        "threads of zero": ["generate", checkpoint, "--threads", "0"],
        "text too short": ["train", short],
    }
    if not torch.cuda.is_available():
        cases["CUDA absent"] = ["train", text_file, "--device", "cuda"]
    return cases


@pytest.mark.parametrize("case", [
    "missing file", "binary file", "bad checkpoint (generate)", "bad checkpoint (inspect)",
    "missing checkpoint", "unknown preset", "bad number", "negative number", "bad temperature",
    "unknown sample", "no corpus", "unknown prompt characters", "resume with a new shape",
    "unknown option", "text too short", "resume with another text", "threads of zero",
    "CUDA absent"])
def test_user_errors_are_one_clear_line(case, text_file, checkpoint, tmp_path, capsys):
    cases = _bad_inputs(text_file, checkpoint, tmp_path)
    if case not in cases:
        pytest.skip("CUDA is available here")
    status, out, err = run(capsys, *cases[case])
    assert status != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    assert out == ""


def test_unknown_prompt_characters_are_named(checkpoint, capsys):
    status, _, err = run(capsys, "generate", checkpoint, "--prompt", "the €")
    assert status == 2
    assert "'€'" in err


def _run_watch(watch, durations, start=0.0):
    """Feed step durations to the watch; the thread count it asks for after each step."""
    elapsed, asked = start, []
    for step, duration in enumerate(durations, 1):
        elapsed += duration
        asked.append(watch.observe(elapsed, step))
    return asked, elapsed


def test_slowdown_watch_ignores_one_long_gap_but_not_a_lasting_slowdown():
    watch = thread_watch.SlowdownWatch(2, factor=3, settle=2, reference=4, recent=3)
    # two settling steps, four usual ones, one validation gap, then steps 5x slower
    asked, _ = _run_watch(watch, [1.0, 1.0, 0.1, 0.1, 0.1, 0.1, 2.0, 0.1, 0.1, 0.5, 0.5, 0.5])
    assert asked == [None] * 10 + [1, None]
    assert "slower at step 11" in watch.message and "1 CPU thread" in watch.message


def test_slowdown_watch_goes_back_to_all_threads_once_the_load_has_passed():
    """A few seconds of another program's work must not halve the rest of a run's speed."""
    watch = thread_watch.SlowdownWatch(2, factor=3, settle=2, reference=4, recent=3, retry_s=10)
    asked, elapsed = _run_watch(watch, [1.0, 1.0] + [0.125] * 4 + [0.5] * 2)
    assert asked[-1] == 1 and watch.threads == 1  # busy: one thread
    # 10 s on one thread at 0.25 s a step, then a trial of all the threads
    asked, elapsed = _run_watch(watch, [0.25] * 40, elapsed)
    assert asked == [None] * 39 + [2]
    assert watch.message is None  # a trial is not news
    # a changeover step, then 3 timed ones, faster than one thread now the machine is free
    asked, _ = _run_watch(watch, [0.125] * 4, elapsed)
    assert asked == [None, None, None, 2]
    assert watch.threads == 2 and "fast again at step 4" in watch.message


def test_slowdown_watch_stays_on_one_thread_while_the_machine_stays_busy():
    watch = thread_watch.SlowdownWatch(2, factor=3, settle=2, reference=4, recent=3, retry_s=10)
    asked, elapsed = _run_watch(watch, [1.0, 1.0] + [0.125] * 4 + [0.5] * 2 + [0.25] * 40)
    assert asked[-1] == 2  # the trial starts
    # all threads still 4x slower than one: the trial is lost, the next waits twice as long
    asked, elapsed = _run_watch(watch, [1.0] * 4, elapsed)
    assert asked == [None, None, None, 1]
    assert watch.message is None  # nothing to tell: still one thread
    asked, elapsed = _run_watch(watch, [0.25] * 80, elapsed)
    assert asked == [None] * 79 + [2]  # 20 s later, not 10
    # this trial wins; a later load is a new one: its first trial comes 10 s after it again
    asked, elapsed = _run_watch(watch, [0.125] * 4 + [0.5] * 3 + [0.25] * 40, elapsed)
    assert asked[3] == 2 and asked[6] == 1 and asked[-1] == 2
    assert asked.count(None) == len(asked) - 3


def test_a_preset_trains_in_the_precision_this_device_trains_fastest_in():
    """"auto" (the device's fastest, decided when training starts, as a recommendation
    measures it) unless --precision says otherwise; the default preset too."""
    import argparse
    import time

    from microlm.cli.train_settings import choose_config

    for preset in ("small", None):
        args = argparse.Namespace(preset=preset, time_budget=None, seed=None,
                                  started=time.monotonic())
        _, training = choose_config(args, 10_000, 40, "cpu", {})
        assert training.precision == "auto"
        _, training = choose_config(args, 10_000, 40, "cpu", {"precision": "float32"})
        assert training.precision == "float32"


def _progress_lines(progress, events) -> list[str]:
    """The lines a ProgressLine writes to a log for `events` (each step drawn)."""
    import io

    from microlm.trainer import StepCompleted, TrainingStarted

    progress.stream = io.StringIO()
    progress.redraw_every = 0.0
    progress.started(TrainingStarted(total_steps=500, steps_per_epoch=100, start_step=0,
                                     num_parameters=1000, train_chars=9000, val_chars=1000,
                                     device="cpu"), trainer_step=0)
    for step, elapsed, progress_fraction in events:
        progress.step(StepCompleted(step, 1 + step // 100, 2.0, 1e-3, 5000.0, elapsed,
                                    progress_fraction, 60.0 - elapsed))
    return progress.stream.getvalue().splitlines()


def test_a_budgeted_run_shows_its_progress_by_time_that_never_jumps():
    """The steps that fit in a time budget depend on the speed, which varies: the line shows
    the steps taken and the time (which only moves forward), never a re-estimated total."""
    from microlm.cli.progress import ProgressLine

    # the speed drops (a validation, a busy machine) and recovers: steps per second vary
    events = [(10, 1.0, 1 / 60), (20, 2.0, 2 / 60), (22, 9.0, 9 / 60), (60, 11.0, 11 / 60),
              (90, 41.4, 41.4 / 60), (91, 59.6, 59.6 / 60)]
    lines = _progress_lines(ProgressLine(None, run_epochs=None, time_budget_s=60.0), events)
    shown = [re.search(r"step ([\d,]+)(/[\d,]+)? · (.+?) of (\S+)", line) for line in lines]
    assert all(shown), lines
    assert [m.group(1) for m in shown] == ["10", "20", "22", "60", "90", "91"]
    assert [m.group(2) for m in shown] == [None] * 6  # no estimated total
    assert [m.group(3) for m in shown] == ["1 s", "2 s", "9 s", "11 s", "41 s", "1:00"]
    assert {m.group(4) for m in shown} == {"1:00"}  # the budget, the same on every line


def test_a_run_of_epochs_shows_its_fixed_step_total():
    from microlm.cli.progress import ProgressLine

    events = [(step, step / 10, step / 500) for step in (1, 50, 51, 300, 500)]
    lines = _progress_lines(ProgressLine(None, run_epochs=5), events)
    totals = [re.search(r"step ([\d,]+)/([\d,]+)", line).groups() for line in lines]
    assert totals == [("1", "500"), ("50", "500"), ("51", "500"), ("300", "500"),
                      ("500", "500")]
    assert all(" of " not in line for line in lines)


def test_a_budgeted_run_prints_its_budget_on_every_progress_line(tmp_path, capsys,
                                                                monkeypatch):
    """The training loop of `microlm train` hands the run's time budget to its progress
    line (run in-process, so that no calibration takes the time; the budget leaves room for
    the first run's set-up, over a second on a busy machine)."""
    import argparse
    import time

    from microlm import CharacterTokenizer, MicroLM, TrainingConfig
    from microlm.cli.progress import ProgressLine
    from microlm.cli.train_loop import train_with_progress

    original_step = ProgressLine.step

    def draw_every_step(self, event):
        self.redraw_every = 0.0
        original_step(self, event)

    monkeypatch.setattr(ProgressLine, "step", draw_every_step)
    tokenizer = CharacterTokenizer(TEXT)
    model = MicroLM(vocab_size=tokenizer.vocab_size(), embedding_dim=8, hidden_dim=16,
                    num_layers=1, dropout=0.0)
    trainer = ModelTrainer(model, tokenizer, config=TrainingConfig(
        epochs=1000, batch_size=8, sequence_length=16))
    trainer.prepare_data(TEXT)
    output = tmp_path / "budget.pt"
    args = argparse.Namespace(threads=1, time_budget=4.0, started=time.monotonic())
    assert train_with_progress(trainer, {"time_budget_s": 4.0, "checkpoint_path": str(output)},
                               output, args) == 0
    err = capsys.readouterr().err
    shown = re.findall(r"step ([\d,]+)(/[\d,]+)? · (\d+) s of (\d+) s", err)
    assert len(shown) >= 3, err[-2000:]  # a line per step: a tiny model takes hundreds
    assert {total for _, total, _, _ in shown} == {""}  # no estimated total
    assert {of for _, _, _, of in shown} == {"4"}
    steps = [int(step.replace(",", "")) for step, _, _, _ in shown]
    seconds = [int(s) for _, _, s, _ in shown]
    assert steps == sorted(steps) and seconds == sorted(seconds)


# ---- the recommendation and the probe in plain words ----

HEADLINE = re.compile(r"Recommended for 60 s: hidden size (\d+), 1 layer, (output layer [\d,]+ "
                      r"units|linear output layer), batch (\d+) x (\d+) characters, learning "
                      r"rate [\d.e-]+, about [\d,]+ steps")


def test_a_time_budget_prints_the_recommendation_in_one_line_and_reasons_on_request(
        capsys, monkeypatch):
    import argparse
    import time

    from microlm import budget as budgets
    from microlm.cli.train_settings import choose_config
    from microlm.speed import MachineSpeed

    monkeypatch.setattr(budgets, "calibrate", lambda **kwargs: MachineSpeed("cpu", 0.002, 2e9))
    args = cli.build_parser().parse_args(["train", "--sample", "python-documentation",
                                          "--time-budget", "60"])
    args.started = time.monotonic()
    assert args.explain is False
    model, training = choose_config(args, 300_000, 65, "cpu", {})
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    match = HEADLINE.fullmatch(lines[0])
    assert match, lines[0]
    assert int(match[1]) == model.hidden_dim
    assert (int(match[3]), int(match[4])) == (training.batch_size, training.sequence_length)
    explained = argparse.Namespace(**{**vars(args), "explain": True})
    choose_config(explained, 300_000, 65, "cpu", {})
    lines = capsys.readouterr().err.strip().splitlines()
    assert HEADLINE.fullmatch(lines[0]) and len(lines) >= 10
    reasons = lines[1:]
    assert all(line.startswith("  - ") and line.endswith(".") for line in reasons)
    assert reasons[0].startswith(f"  - Hidden size {model.hidden_dim}: ")
    assert not any("chars/s" in line for line in reasons)  # the details stay out


def test_probe_prints_the_plain_summary_first_then_the_details(capsys):
    status, out, _ = run(capsys, "probe", "--seconds", "0.2")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith("This computer trains about ")
    assert lines[0].endswith("characters a second with a typical model (one LSTM layer, "
                             "hidden size 256, 1,024 output layer units).")
    assert lines[1].startswith("A minute of training reads about ")
    details = lines.index("Details:")
    assert details > 1 and lines[details + 1].startswith("CPU: ")
    assert out.index("Fitted costs") > out.index("Details:")

