"""Training under torchrun: 2 CPU processes with gloo, through the command line and through
the library; the helpers of microlm.distributed alone."""

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from microlm import TextGenerator, distributed, load_model
from microlm.prepared import prepare_corpus

ROOT = Path(__file__).resolve().parent.parent
SENTENCES = ("the quick brown fox jumps over the lazy dog. ", "a stitch in time saves nine. ",
             "all that glitters is not gold. ", "where there is smoke there is fire. ")
# 3,210 characters: the 321 held out for validation make 10 windows of 16 per rank (of 2),
# so the ranks' shared validation scores exactly the windows one process would.
TEXT = "".join(SENTENCES[i % 4] for i in range(100))[:3210]
TINY = ["--embedding-dim", "8", "--hidden-dim", "16", "--num-layers", "1", "--dropout", "0",
        "--sequence-length", "16", "--batch-size", "8"]

# The names of this process's threads (Linux names gloo's threads pt_gloo_* and gloo_*).
THREAD_NAMES = '''
import os


def thread_names():
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as comm:
                names.append(comm.read().strip())
        except OSError:  # the thread ended while we looked
            pass
    return sorted(names)
'''

WORKER = THREAD_NAMES + '''
import sys
import torch
from microlm import (CharacterTokenizer, MicroLM, ModelTrainer, StepCompleted, TrainingConfig,
                     TrainingControl, distributed, set_seed)
from microlm.trainer import evaluate_loss

folder, text = sys.argv[1], open(sys.argv[2], encoding="utf-8").read()
assert distributed.init_from_environment("cpu")
rank = distributed.rank()
tokenizer = CharacterTokenizer(text)
set_seed(0)
model = MicroLM(tokenizer.vocab_size(), 8, 16, 1, 0.0)
if rank == 1:  # a different start on purpose: DDP must start every rank from rank 0's weights
    with torch.no_grad():
        model.head.bias.add_(1.0)
config = TrainingConfig(epochs=2, batch_size=4, sequence_length=16, eval_interval=5, seed=3,
                        precision="float32")  # exact sums: the same on every CPU
trainer = ModelTrainer(model, tokenizer, config=config)
loader = trainer.prepare_data(text)
shard_start = loader.tokens[:40].tolist()
control = TrainingControl()
finished = None
for event in trainer.fit(control=control):
    if isinstance(event, StepCompleted) and event.step == 15 and rank == 1:
        control.stop()  # as Ctrl-C on one rank only: every rank must stop at this step
    finished = event
torch.save({"state": trainer.model.state_dict(), "step": finished.step,
            "reason": finished.reason, "val": trainer.evaluate(),
            "val_losses": trainer.history["val_losses"], "shard_start": shard_start,
            "alone": evaluate_loss(trainer.model, trainer.val_tokens, 16, None)},
           f"{folder}/rank{rank}.pt")
distributed.shutdown()
open(f"{folder}/threads{rank}.txt", "w").write(" ".join(thread_names()))
'''

# The command line under torchrun, exactly as `python -m microlm train ...` runs it, then the
# names of the threads left once it has returned (and so left the process group).
CLI_WORKER = THREAD_NAMES + '''
import sys
from microlm import cli, distributed

folder, failing_rank, *arguments = sys.argv[1:]
if failing_rank != "none":  # one rank fails during training, as a bug or a lost GPU would
    from microlm.trainer import ModelTrainer
    train_step = ModelTrainer._train_step

    def failing_step(self, *args, **kwargs):
        if self.step == 3 and distributed.rank() == int(failing_rank):
            raise RuntimeError("a planted failure on one rank")
        return train_step(self, *args, **kwargs)

    ModelTrainer._train_step = failing_step
status = cli.main(arguments)
rank = os.environ["RANK"]
with open(f"{folder}/threads{rank}.txt", "w") as threads:
    threads.write(" ".join(thread_names()))
sys.exit(status)
'''


def gloo_threads(folder: Path, rank: int) -> list[str]:
    names = (folder / f"threads{rank}.txt").read_text().split()
    assert names  # at least the main thread: the rank got as far as looking
    return [name for name in names if "gloo" in name]


def torchrun(*args, timeout=240):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=ROOT)


def ranks_errors(result: subprocess.CompletedProcess) -> str:
    """A failed torchrun's stderr: the ranks' own errors (its start) and torchrun's summary
    (its end), which alone says only which rank died of which signal."""
    return result.stderr[:3000] + " ... " + result.stderr[-1500:]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "proverbs.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_cli_train_under_torchrun_saves_one_ordinary_checkpoint(text_file, tmp_path):
    output = tmp_path / "ddp.pt"
    result = torchrun("-m", "microlm", "train", text_file, *TINY, "--epochs", "1",
                      "--eval-interval", "4", "--output", output)
    # every rank ended with status 0; else show the ranks' own errors (the start of stderr)
    assert result.returncode == 0, ranks_errors(result)
    assert result.stdout.count("Checkpoint saved to") == 1  # only rank 0 reports
    model, tokenizer, metadata = load_model(output)
    train_chars = len(TEXT) - int(0.1 * len(TEXT))
    # Each rank trains on its half: an epoch is one pass over the whole text.
    assert metadata["step"] == (train_chars // 2 - 1) // (8 * 16)
    assert metadata["history"]["val_losses"]
    assert len(TextGenerator(model, tokenizer).generate("the ", 30, seed=1)) == 34


@pytest.fixture(scope="module")
def ranks_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("ranks")


@pytest.fixture(scope="module")
def ranks(text_file, ranks_folder):
    folder = ranks_folder
    script = folder / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    result = torchrun(script, folder, text_file)
    assert result.returncode == 0, ranks_errors(result)
    return [torch.load(folder / f"rank{k}.pt", weights_only=True) for k in (0, 1)]


@pytest.mark.parametrize("arguments, failing_rank, status, ending", [
    (["--epochs", "1"], "none", 0, "Training finished"),
    (["--epochs", "200", "--eval-interval", "1", "--patience", "1"], "none", 0, "stopped early"),
    (["--epochs", "1000", "--time-budget", "15"], "none", 0, "Time budget of 15 s reached"),
    (["--epochs", "5"], "1", 1, "a planted failure on one rank"),
])
def test_no_gloo_thread_outlives_the_command(arguments, failing_rank, status, ending,
                                             text_file, tmp_path):
    """A gloo thread still alive when the interpreter exits can abort the process
    (SIGABRT, "terminate called without an active exception") after a run that succeeded:
    every way a run ends must leave the process group with no gloo thread behind."""
    script = tmp_path / "cli_worker.py"
    script.write_text(CLI_WORKER, encoding="utf-8")
    result = torchrun(script, tmp_path, failing_rank, "train", text_file, *TINY, *arguments,
                      "--output", tmp_path / "model.pt")
    assert "terminate called" not in result.stderr, ranks_errors(result)
    assert [gloo_threads(tmp_path, rank) for rank in (0, 1)] == [[], []]
    if status == 0:
        assert result.returncode == 0, ranks_errors(result)
        assert ending in result.stdout
        _, _, metadata = load_model(tmp_path / "model.pt")
        assert metadata["step"] > 0
    else:  # the failing rank says what went wrong, and torchrun reports the failure
        assert result.returncode != 0
        assert ending in result.stderr


def test_the_library_leaves_no_gloo_thread_after_shutdown(ranks, ranks_folder):
    assert [gloo_threads(ranks_folder, rank) for rank in (0, 1)] == [[], []]


def test_weights_are_identical_on_every_rank_after_training(ranks):
    first, second = ranks
    assert first["state"].keys() == second["state"].keys()
    for name, weight in first["state"].items():
        assert torch.equal(weight, second["state"][name]), name


def test_a_stop_on_one_rank_stops_every_rank_at_the_same_step(ranks):
    assert [r["step"] for r in ranks] == [15, 15]
    assert [r["reason"] for r in ranks] == ["stopped", "stopped"]


def test_ranks_train_on_different_text(ranks):
    assert ranks[0]["shard_start"] != ranks[1]["shard_start"]


def test_validation_is_shared_and_the_same_on_every_rank(ranks):
    first, second = ranks
    assert first["val"] == second["val"]
    assert first["val_losses"] == second["val_losses"]
    # Each rank scored half the windows; together they equal one process scoring them all.
    assert first["val"] == pytest.approx(first["alone"], rel=1e-6)


# ---- the helpers without a process group: a plain single process is unchanged ----

def test_without_torchrun_the_helpers_change_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert not distributed.launched_by_torchrun()
    assert not distributed.init_from_environment("cpu")
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    assert distributed.is_main_process()
    tokens = torch.arange(10)
    assert distributed.shard(tokens) is tokens
    assert distributed.rank_seed(7) == 7
    assert distributed.agree(False, True, 3.5) == (False, True, 3.5)
    loss = torch.tensor(2.5)
    assert distributed.mean_over_ranks(loss) is loss
    assert distributed.broadcast({"a": 1}) == {"a": 1}
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap_model(model, torch.device("cpu")) is model


def test_each_rank_uses_the_gpu_of_its_local_rank(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.launched_by_torchrun()
    assert distributed.local_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        assert distributed.local_device(None) is None  # no GPU: the usual choice (CPU)
        assert distributed.local_device("cuda") == "cuda:1"  # then refused by select_device


def test_other_ranks_keep_only_their_error_lines():
    target = io.StringIO()
    stream = distributed._ErrorsOnly(target, 1)
    stream.write("Model: 2,764 parameters\n[----] 1% step 1/9")
    stream.write("\nerror: out of memory; use a smaller model.\n")
    assert target.getvalue() == "[rank 1] error: out of memory; use a smaller model.\n"


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_every_rank_and_rank_0_saves(signal_number, text_file,
                                                             tmp_path):
    """Ctrl-C in a terminal reaches torchrun and every worker (one process group), as does a
    SIGTERM from a job scheduler. The ranks read a prepared folder here: each maps it and
    trains on its shard."""
    output = tmp_path / "stopped.pt"
    prepare_corpus(text_file, tmp_path / "prepared")
    script = tmp_path / "cli_worker.py"
    script.write_text(CLI_WORKER, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", str(script), str(tmp_path), "none", "train",
               str(tmp_path / "prepared"), *TINY,
               "--epochs", "1000", "--eval-interval", "3", "--output", str(output)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, cwd=ROOT, start_new_session=True)
    try:
        for line in process.stderr:  # rank 0's validation lines: training is under way
            if line.startswith("step "):
                break
        os.killpg(process.pid, signal_number)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert "Training stopped" in stdout
    assert "terminate called" not in stderr
    assert [gloo_threads(tmp_path, rank) for rank in (0, 1)] == [[], []]
    _, _, metadata = load_model(output)
    steps_per_epoch = (len(TEXT) - int(0.1 * len(TEXT))) // 2 // (8 * 16)
    assert 0 < metadata["step"] < 1000 * steps_per_epoch
    assert metadata["history"]["val_losses"][-1][0] == metadata["step"]  # validated at the stop
