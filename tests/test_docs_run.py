"""Every ```python and ```bash block of README.md and docs/ runs, as written, offline
(tests/test_docs.py compiles the python blocks and builds the site; this file runs them).

The blocks are found when the tests are collected, so a new block is picked up and must run.

Python blocks. Many are snippets that use names the page gives in prose (`model`, `loader`,
`train_one_epoch`, `x`, `y`...) or defines in an earlier block. PRELUDES gives each page the
tiny real objects behind those names (tests/docs_run/tiny.py): pieces, each run before a block
that uses one of its names; on a page whose tabs mean different things by one name (index.md:
`Trainer`, `model`) a piece carries a marker, a text of the block it is for. Where a block
shows a fragment with `...`, REWRITES replaces it with tiny arguments, each saying why.
EPILOGUES check, after a block, what the page says it gives; EXPECT, what it prints. Each
block runs in its own interpreter (tests/docs_run/runner.py: prelude, block and epilogue in one
`__main__` namespace, tracebacks on the page's own lines, any connection to another host
refused and reported), with its cwd and CARBONLOG_HOME in a fresh temporary folder.
`test_every_rewrite_still_applies` fails when a page no longer has what a rewrite, epilogue,
expectation or marker names, so a fixed page sheds its workaround.

Bash blocks. Each command runs in its own `bash -c`, in a fresh temporary folder, against a
copy of a ledger of 12 small runs written with carbonlog.Tracker (constant power_w): run 1
"finetune" and run 2 "scratch" (task sst2, val_accuracy and eval_accuracy in every epoch) and
runs 3-12 a sweep, since the pages name runs 1, 2, 12, "finetune" and "scratch". `&&` chains
are split; `export` carries into the block's later commands. A usage synopsis (`carbonlog
demo [--epochs 5] ...`) is not a command: every option and choice it shows must be in that
subcommand's `--help`. SKIP_COMMANDS lists the lines that do not run, each with its reason;
a line that is neither `carbonlog ...` nor listed fails, so each new kind of line gets a rule.
`carbonlog demo` (about 20 s) runs once per session; the same demo line elsewhere reuses its
result.

Time: the blocks run on 2 workers (the CI machine has 2 cores) while pytest walks the tests:
the first block's test starts every selected block, the demo first, then the python blocks
(each 2-7 s, mostly imports), then the rest; each test waits for its own.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNNER = Path(__file__).with_name("docs_run") / "runner.py"
OFFLINE_SITE = RUNNER.with_name("offline_site")  # its sitecustomize: the same guard, for bash
NETWORK_MARK = "docs-run: network refused:"  # the runner's, on stderr
WORKERS = 2
BLOCK_TIMEOUT_S = 240


# --- finding the blocks --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Block:
    page: str  # relative to the repository: "README.md", "docs/quickstart/python.md"
    lang: str  # "python" or "bash"
    n: int  # 1-based, among the page's blocks of this language
    line: int  # the page's line of the block's first code line
    code: str  # dedented (tabbed blocks are indented)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.lang}{self.n}"


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def find_blocks() -> list[Block]:
    found = []
    fence = re.compile(r"^( *)```(python|bash)[ \t]*\n(.*?)^\1```", re.DOTALL | re.MULTILINE)
    for path in pages():
        text = path.read_text(encoding="utf-8")
        counts = {"python": 0, "bash": 0}
        for match in fence.finditer(text):
            lang = match.group(2)
            counts[lang] += 1
            found.append(
                Block(
                    page=path.relative_to(REPO).as_posix(),
                    lang=lang,
                    n=counts[lang],
                    line=text.count("\n", 0, match.start(3)) + 1,
                    code=textwrap.dedent(match.group(3)),
                )
            )
    return found


BLOCKS = find_blocks()


# --- python blocks: preludes, rewrites, epilogues, expected output ---------------------------


@dataclasses.dataclass(frozen=True)
class Piece:
    """Prelude code that binds `names`; it runs before a block of its page that uses one of
    them (and, with a marker, only before blocks whose text holds the marker)."""

    names: frozenset[str]
    code: str
    marker: str | None = None


def piece(names: str, code: str, marker: str | None = None) -> Piece:
    return Piece(frozenset(names.split()), "from docs_run import tiny\n" + code, marker)


PLAIN = piece(
    "model loader optimizer train_one_epoch",
    "globals().update(tiny.plain_loop())  # a torch MLP, 64 rows, SGD, one epoch's loop\n",
)
LIGHTNING = piece(
    "model train_loader val_loader Trainer",
    "globals().update(tiny.lightning_names())  # LightningModule, 2 + 1 batches, Trainer\n",
)
TRANSFORMERS = piece(
    "model args train train_dataset eval_dataset Trainer",
    "globals().update(tiny.transformers_names())  # tiny BERT, 1 epoch on the CPU, 16 + 8 rows\n"
    "from transformers import Trainer\n",
)
KERAS = piece(
    "keras model x y x_test y_test",
    "globals().update(tiny.keras_names())  # compiled Sequential\nx_test, y_test = x, y\n",
)


def callback_of(framework: str) -> Piece:
    return piece(
        "EmissionsCallback", f"from carbonlog.integrations.{framework} import EmissionsCallback\n"
    )


PRELUDES: dict[str, list[Piece]] = {
    # One block shows all four uses: `lightning`, `transformers` and `keras` are modules the
    # reader has imported; `model`, `x`, `y` are the Keras fit's (bound last); `hf_model`,
    # `args` and `train_dataset` serve the rewrite of the Transformers fragment (REWRITES).
    "README.md": [
        piece("lightning", "import lightning\n"),
        piece(
            "transformers hf_model",
            "import transformers\n"
            "_hf = tiny.transformers_names()\n"
            "hf_model, args, train_dataset = _hf['model'], _hf['args'], _hf['train_dataset']\n",
        ),
        piece("train_one_epoch", "train_one_epoch = tiny.plain_loop()['train_one_epoch']\n"),
        KERAS,
    ],
    # The four tabs mean different things by `Trainer` and `model`: the block's import decides.
    "docs/index.md": [
        dataclasses.replace(LIGHTNING, marker="carbonlog.integrations.lightning"),
        dataclasses.replace(TRANSFORMERS, marker="carbonlog.integrations.transformers"),
        dataclasses.replace(KERAS, marker="carbonlog.integrations.keras"),
        dataclasses.replace(PLAIN, names=frozenset({"train_one_epoch"})),
    ],
    "docs/quickstart/python.md": [PLAIN],
    # The later blocks take EmissionsCallback from the page's first block.
    "docs/quickstart/lightning.md": [LIGHTNING, callback_of("lightning")],
    "docs/quickstart/transformers.md": [TRANSFORMERS],
    "docs/quickstart/keras.md": [KERAS, callback_of("keras")],
    # A one-process group (a HashStore: no sockets) and the local rank a launcher gives.
    "docs/distributed.md": [
        piece(
            "dist local_rank",
            "import torch.distributed as dist\n"
            "dist.init_process_group('gloo', store=dist.HashStore(), rank=0, world_size=1)\n"
            "local_rank = 0\n",
        )
    ],
    # "Elsewhere" (not Transformers, which detects it) means Lightning or Keras.
    "docs/finetune-vs-scratch.md": [callback_of("lightning")],
    # The second block relies on the first: EmissionsCallback imported and the token in the
    # environment (the page's own placeholder; nothing is sent, no fit starts).
    "docs/offline.md": [
        callback_of("lightning"),
        piece(
            "ElectricityMaps", "import os\nos.environ.setdefault('ELECTRICITYMAPS_TOKEN', '...')\n"
        ),
    ],
}


@dataclasses.dataclass(frozen=True)
class Rewrite:
    page: str
    old: str
    new: str  # as many lines as `old`, so tracebacks keep the page's line numbers
    why: str
    without_cuda_only: bool = False


REWRITES = [
    Rewrite(
        "README.md",
        "transformers.Trainer(..., callbacks=",
        "transformers.Trainer(model=hf_model, args=args, train_dataset=train_dataset, callbacks=",
        "the block elides the Trainer's own arguments with `...`",
    ),
    Rewrite(
        "docs/distributed.md",
        "gpus=[local_rank],",
        "gpus=[],",
        "no GPU here: the block's own comment says `[]` when it trains on the CPU",
        without_cuda_only=True,
    ),
]

EPILOGUES: dict[tuple[str, str], str] = {
    # (page, a text of the block): code run after it, in its namespace, checking the page's word
    # "list it before CSVLogger / TensorBoard so they see its keys"
    ("README.md", "CSVLogger"): (
        "import csv\n"
        "header = next(csv.reader(open('log.csv')))\n"
        "assert 'carbon/co2_kg' in header, header\n"
    ),
    # "Each epoch then carries carbon/energy_kwh, carbon/co2_kg, their running totals ..."
    ("docs/index.md", "carbonlog.integrations.lightning"): (
        "trainer.fit(model, train_loader)\n"
        "for key in ('carbon/energy_kwh', 'carbon/co2_kg', 'carbon/co2_kg_total'):\n"
        "    assert key in trainer.callback_metrics, sorted(trainer.callback_metrics)\n"
    ),
    ("docs/index.md", "carbonlog.integrations.transformers"): (
        "trainer.train()\n"
        "logged = {key for entry in trainer.state.log_history for key in entry}\n"
        "assert {'carbon/energy_kwh', 'carbon/co2_kg_total'} <= logged, sorted(logged)\n"
    ),
    ("docs/index.md", "carbonlog.integrations.keras"): (
        "history = model.history.history\n"
        "assert len(history['carbon/co2_kg']) == 10, sorted(history)\n"
    ),
    ("docs/quickstart/lightning.md", "trainer.fit"): (
        "metrics = trainer.callback_metrics\n"
        "assert 'carbon/co2_kg_total' in metrics, sorted(metrics)\n"
    ),
}

NONZERO = r"(?:[1-9][0-9.]*|0\.[0-9]*[1-9][0-9]*)(?:e[-+]?[0-9]+)?"
ASKS_THE_NETWORK: dict[tuple[str, str], set[str]] = {
    # (page, a text of the block): the hosts a block that asks for a live source may try (the
    # Site asks from the moment it is built). The runner still refuses them: nothing is sent,
    # the table's figure stands in, as the page says; any other host fails the test.
    ("docs/offline.md", 'live="electricitymaps"'): {"api.electricitymap.org"},
    ("docs/offline.md", "live=ElectricityMaps("): {"api.electricitymap.org"},
}

EXPECT: dict[tuple[str, str], list[str]] = {
    # (page, a text of the block): what it prints, regular expressions over its stdout lines
    ("docs/quickstart/python.md", "interval.energy_kwh"): [
        *(rf"^epoch {i}: {NONZERO} Wh, {NONZERO} g CO2$" for i in range(10)),
        rf"^{NONZERO} kWh, {NONZERO} kg CO2$",
    ],
    ("docs/quickstart/python.md", "carbonlog.estimate"): [
        rf"^{NONZERO} gcp:[a-z0-9-]+$",
        r"^Experiments were conducted using Google Cloud Platform in region us-central1",
    ],
    ("docs/quickstart/transformers.md", "emissions.summary"): [rf"^{NONZERO} kg CO2$"],
    ("docs/quickstart/keras.md", "history.history"): [rf"^{NONZERO} kg CO2$"],
}


DEMO_ROWS = [rf"^epoch {i} +[0-9.]+ +{NONZERO} " for i in range(1, 6)]
BASH_EXPECT: dict[tuple[str, str], list[str]] = {
    # (page, a text of the command): what it prints, regular expressions over its stdout lines
    # a row per epoch (5 by default): seconds, then a kWh that is not zero
    ("README.md", "carbonlog demo"): DEMO_ROWS,
    ("docs/index.md", "carbonlog demo"): DEMO_ROWS,
    ("docs/offline.md", "carbonlog intensity"): [r"^location +FR: France$"],  # the export's
    ("docs/cli.md", "runs show 12"): [r"^run +run 12 \(sweep-12\)$", r"^epoch "],
    ("docs/cli.md", "compare finetune scratch"): [r"^run 1 \(finetune\) reached val_accuracy"],
    ("README.md", "compare 1 2"): [r"^run 1 \(finetune\) reached eval_accuracy>=0.9 with "],
    ("README.md", "statement 2 --format latex"): [r"\\cite\{lacoste2019quantifying\}"],
}


def names_used(code: str) -> set[str]:
    """Every name the code (its functions and classes included) loads, stores or reads an
    attribute by."""
    names, todo = set(), [compile(code, "<block>", "exec")]
    while todo:
        unit = todo.pop()
        names.update(unit.co_names)
        todo.extend(c for c in unit.co_consts if hasattr(c, "co_names"))
    return names


def _pick(table: dict, block: Block) -> list:
    """The values of (page, marker) keys that match the block."""
    return [v for (page, marker), v in table.items() if page == block.page and marker in block.code]


def prelude_of(block: Block, code: str) -> str:
    """The pieces of the page's prelude that the code uses, in the page's order."""
    used = names_used(code)
    return "".join(
        p.code
        for p in PRELUDES.get(block.page, [])
        if p.names & used and (p.marker is None or p.marker in block.code)
    )


@functools.cache
def cuda_available() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    import torch

    return torch.cuda.is_available()


def rewritten(block: Block) -> str:
    code = block.code
    for rewrite in REWRITES:
        if rewrite.page == block.page and rewrite.old in code:
            if rewrite.without_cuda_only and cuda_available():
                continue
            assert rewrite.old.count("\n") == rewrite.new.count("\n")  # keeps the line numbers
            code = code.replace(rewrite.old, rewrite.new)
    return code


# --- bash blocks: which lines run, which are skipped and why -------------------------------

SKIP_COMMANDS = [
    (r"^pip install\b", "installs from PyPI (the network); the tests run in the installed env"),
    (r"^python -m pytest\b", "the test suite itself: recursive and minutes long"),
    (r"^sudo\b", "needs root and changes the host's permissions (RAPL)"),
    (
        r"^python benchmarks/gpu_check\.py\b",
        "needs an NVIDIA GPU and runs for minutes (a benchmark, run by hand on a GPU)",
    ),
    (r"^mkdocs serve\b", "a server that runs until stopped (test_docs.py builds the site)"),
]

SYNOPSIS = re.compile(r"\[-")  # `carbonlog demo [--epochs 5] [...]`: optional arguments

_demo_results: dict[str, subprocess.CompletedProcess] = {}
_demo_lock = threading.Lock()


def commands_of(code: str) -> list[str]:
    """Logical command lines: backslash continuations joined, `&&` chains split, comments and
    blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for line in joined.splitlines():
        if not shlex.split(line, comments=True):
            continue
        commands.extend(part.strip() for part in line.split("&&"))
    return commands


def skip_reason(command: str) -> str | None:
    return next((why for pattern, why in SKIP_COMMANDS if re.search(pattern, command)), None)


# --- running ---------------------------------------------------------------------------------


def base_env(home: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CARBONLOG_", "ELECTRICITYMAPS_")) and key != "PYTEST_CURRENT_TEST"
    }
    env.update(
        CARBONLOG_HOME=str(home),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        WANDB_MODE="offline",
        KERAS_BACKEND="torch",
        MPLBACKEND="Agg",
        TOKENIZERS_PARALLELISM="false",
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p),
        COLUMNS="100",
    )
    return env


@dataclasses.dataclass
class Outcome:
    ran: list[tuple[str, subprocess.CompletedProcess]] = dataclasses.field(default_factory=list)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    folder: Path = Path()
    seconds: float = 0.0


def run_python(block: Block, folder: Path) -> Outcome:
    folder.mkdir(parents=True, exist_ok=True)
    code, epilogue = rewritten(block), "\n".join(_pick(EPILOGUES, block))
    files = {"prelude": prelude_of(block, code + "\n" + epilogue), "block": code}
    if epilogue:
        files["epilogue"] = epilogue
    paths = []
    for name, text in files.items():
        path = folder / f".docs_{name}.py"
        path.write_text(text, encoding="utf-8")
        paths.append(str(path))
    argv = [sys.executable, str(RUNNER), str(REPO / block.page), str(block.line), *paths]
    done = subprocess.run(
        argv,
        cwd=folder,
        env=base_env(folder / "carbonlog_home"),
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    return Outcome(ran=[(block.code, done)], folder=folder)


def run_bash(block: Block, folder: Path, ledger_home: Path) -> Outcome:
    folder.mkdir(parents=True, exist_ok=True)
    home = folder / "carbonlog_home"
    shutil.copytree(ledger_home, home)
    env = base_env(home)
    env["PYTHONPATH"] = os.pathsep.join([str(OFFLINE_SITE), env["PYTHONPATH"]])
    outcome = Outcome(folder=folder)
    for command in commands_of(block.code):
        words = shlex.split(command, comments=True)
        why = skip_reason(command)
        if why:
            outcome.skipped.append((command, why))
        elif words[0] == "export":
            for assignment in words[1:]:
                name, _, value = assignment.partition("=")
                env[name] = value
            outcome.ran.append((command, subprocess.CompletedProcess(command, 0, "", "")))
        elif words[0] != "carbonlog":
            raise AssertionError(
                f"{block.id}: no rule for {command!r}: run it, or add it to SKIP_COMMANDS with why"
            )
        elif SYNOPSIS.search(command):
            outcome.ran.append((command, check_synopsis(command, words, env, folder)))
        elif words[1:2] == ["demo"]:
            with _demo_lock:
                if command not in _demo_results:
                    _demo_results[command] = bash(command, env, folder)
            outcome.ran.append((command, _demo_results[command]))
        else:
            outcome.ran.append((command, bash(command, env, folder)))
    return outcome


def bash(command: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )


def check_synopsis(command, words, env, cwd) -> subprocess.CompletedProcess:
    """A usage line: `carbonlog SUB --help` runs and names every option and choice it shows."""
    done = bash(f"carbonlog {words[1]} --help", env, cwd)
    text = " ".join(done.stdout.split())
    named = re.findall(r"--[a-z][a-z-]*", command)
    groups = re.findall(r"\b[\w-]+(?:\|[\w-]+)+", command)  # auto|lightning|torch
    choices = [choice for group in groups for choice in group.split("|")]
    missing = [name for name in named if name not in text]
    missing += [c for c in choices if not re.search(rf"[{{,]{re.escape(c)}[,}}]", text)]
    if missing and done.returncode == 0:
        done = subprocess.CompletedProcess(
            done.args, 1, done.stdout, f"the synopsis names {missing}, `--help` does not"
        )
    return done


def write_ledger(home: Path) -> None:
    """12 completed runs at constant power, so energy is watts x seconds: run 1 "finetune"
    (3 short epochs) and run 2 "scratch" (5 epochs ten times as long), both of task sst2 with
    val_accuracy and eval_accuracy in every epoch, then runs 3-12, a sweep of 2 short epochs.
    The ledger is $CARBONLOG_HOME/ledger.sqlite3."""
    from carbonlog import Tracker

    home.mkdir(parents=True)
    runs = [
        ("finetune", {"pretrained": True, "base_model": "bert-base-uncased"}, [0.85, 0.91, 0.93]),
        ("scratch", {"pretrained": False}, [0.55, 0.72, 0.86, 0.9, 0.91]),
        *((f"sweep-{i}", {"pretrained": False}, [0.5, 0.6 + i / 100]) for i in range(3, 13)),
    ]
    for name, facts, accuracies in runs:
        epoch_s = 0.05 if name == "scratch" else 0.005
        tracker = Tracker(
            location="FR",
            gpus=None,
            power_w={"cpu": 65.0, "ram": 5.0},
            run_name=name,
            ledger=str(home / "ledger.sqlite3"),
            task="sst2",
            **facts,
        ).start()
        for accuracy in accuracies:
            time.sleep(epoch_s)
            metrics = {"val_accuracy": accuracy, "eval_accuracy": accuracy, "loss": 1 - accuracy}
            tracker.mark("epoch", metrics=metrics)
        tracker.stop()


def longest_first(blocks: list[Block]) -> list[Block]:
    """The first block with a demo, then the python blocks, then the other bash blocks (a later
    demo block then finds the demo done instead of holding a worker while it waits)."""
    first_demo = next((b for b in blocks if b.lang == "bash" and "carbonlog demo" in b.code), None)
    return sorted(blocks, key=lambda b: 0 if b is first_demo else 1 if b.lang == "python" else 2)


class Launcher:
    """Runs the selected blocks on WORKERS threads, each block in its own subprocesses."""

    def __init__(self, blocks: list[Block], root: Path, ledger_home: Path):
        self.pool = concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="docs-run")
        self.futures = {}
        for i, block in enumerate(longest_first(blocks)):
            folder = root / f"{i:02d}-{re.sub(r'[^A-Za-z0-9]+', '-', block.id)}"
            if block.lang == "python":
                future = self.pool.submit(self._timed, run_python, block, folder)
            else:
                future = self.pool.submit(self._timed, run_bash, block, folder, ledger_home)
            self.futures[block.id] = future

    @staticmethod
    def _timed(fn, *args) -> Outcome:
        start = time.perf_counter()
        outcome = fn(*args)
        outcome.seconds = time.perf_counter() - start
        return outcome

    def result(self, block: Block) -> Outcome:
        return self.futures[block.id].result()


@pytest.fixture(scope="module")
def launcher(request, tmp_path_factory):
    selected = [
        item.callspec.params["block"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_doc_block" and hasattr(item, "callspec")
    ]
    ledger_home = tmp_path_factory.mktemp("docs_ledger") / "home"
    if any(block.lang == "bash" for block in selected):
        write_ledger(ledger_home)
    else:
        ledger_home.mkdir(parents=True)
    launched = Launcher(selected, tmp_path_factory.mktemp("docs_run"), ledger_home)
    yield launched
    launched.pool.shutdown(wait=True, cancel_futures=True)


# --- the tests -----------------------------------------------------------------------------


def _shown(done: subprocess.CompletedProcess) -> str:
    out, err = done.stdout[-4000:], done.stderr[-6000:]
    return f"exit {done.returncode}\n--- stdout\n{out}\n--- stderr\n{err}"


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_doc_block(block: Block, launcher, record_property):
    outcome = launcher.result(block)
    record_property("seconds", round(outcome.seconds, 2))
    for command, why in outcome.skipped:
        record_property("skipped", f"{command}: {why}")
    allowed = set().union(*_pick(ASKS_THE_NETWORK, block))
    for command, done in outcome.ran:
        where = f"{block.id} (line {block.line})" + (f": {command}" if block.lang == "bash" else "")
        assert done.returncode == 0, f"{where}\n{_shown(done)}"
        tried = re.findall(rf"^{re.escape(NETWORK_MARK)} '?([^'\s]+)", done.stderr, re.MULTILINE)
        assert set(tried) <= allowed, f"{where} went to the network: {tried}\n{_shown(done)}"
        if block.lang == "python":
            expected = [p for patterns in _pick(EXPECT, block) for p in patterns]
            if "print(" in block.code:
                assert done.stdout.strip(), f"{where} prints nothing\n{_shown(done)}"
        else:
            expected = [
                p
                for (page, marker), patterns in BASH_EXPECT.items()
                if page == block.page and marker in command
                for p in patterns
            ]
            if command.startswith("carbonlog "):
                assert done.stdout.strip(), f"{where} printed nothing\n{_shown(done)}"
            if re.search(r"^carbonlog report\b.*--out report/", command):
                html = outcome.folder / "report" / "report.html"
                assert html.is_file() and html.stat().st_size > 1000, f"{where}: no {html}"
        for pattern in expected:
            assert re.search(pattern, done.stdout, re.MULTILINE), (
                f"{where}: no line matches {pattern!r}\n{_shown(done)}"
            )
    if not outcome.ran:
        pytest.skip("; ".join(f"{command!r}: {why}" for command, why in outcome.skipped))


def test_every_rewrite_still_applies():
    """A page that no longer has what a workaround names sheds the workaround."""
    python = [b for b in BLOCKS if b.lang == "python"]
    for rewrite in REWRITES:
        assert any(b.page == rewrite.page and rewrite.old in b.code for b in python), (
            f"{rewrite.page} no longer has {rewrite.old!r}: drop the rewrite"
        )
    for table in (EPILOGUES, EXPECT, ASKS_THE_NETWORK):
        for page, marker in table:
            assert any(b.page == page and marker in b.code for b in python), (page, marker)
    for page, marker in BASH_EXPECT:
        assert any(b.page == page and marker in b.code for b in BLOCKS if b.lang == "bash")
    for page, pieces in PRELUDES.items():
        assert any(b.page == page for b in python), f"{page} has no python block: drop its prelude"
        for p in pieces:
            assert p.marker is None or any(p.marker in b.code for b in python if b.page == page)


def test_the_blocks_are_found():
    ids = {block.id for block in BLOCKS}
    assert {"README.md:python1", "README.md:bash2", "docs/cli.md:bash8"} <= ids
    assert all(block.code.strip() for block in BLOCKS)
