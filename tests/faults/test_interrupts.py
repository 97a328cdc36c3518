"""Ctrl-C in a live process (a notebook): a fit stopped by KeyboardInterrupt from a batch
callback must not stay "running" in the ledger while the process lives.

Lightning reports the interrupt to callbacks (on_exception); the Trainer and Keras report
nothing, so the run is closed as "interrupted" by the next use of the callback (the next
fit, evaluate or predict; for the Trainer a new Trainer or train()), or when the process
exits. Each test reads the run back from the ledger.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from carbonlog.ledger import Ledger
from tests.faults.adapter_fits import (
    OPTIONS,
    hf_interrupt,
    hf_trainer,
    keras_data,
    keras_fit,
    keras_interrupt,
    keras_model,
    ledger_path,
    lightning_fit,
    lightning_interrupt,
)

# Keras' torch backend converts tensors with np.array(copy=False): noise from numpy 2, not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
REPO = Path(__file__).resolve().parents[2]


def runs() -> list[tuple[str, str, str]]:
    """(stage, status, framework) of every run in the test's ledger, oldest first."""
    with Ledger(ledger_path()) as ledger:
        found = ledger.runs()
    return [(run.stage, run.status, run.framework) for run in reversed(found)]


def status_of(run_id: int) -> str:
    with Ledger(ledger_path()) as ledger:
        return ledger.run(run_id).status


def only_run_id() -> int:
    with Ledger(ledger_path()) as ledger:
        (run,) = ledger.runs()
    return run.id


# -- Lightning: on_exception sees it --------------------------------------------------------


def test_lightning_closes_a_ctrl_c_at_once_as_interrupted(tmp_path):
    pytest.importorskip("lightning")
    from carbonlog.integrations.lightning import EmissionsCallback

    callback = EmissionsCallback(**OPTIONS)
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit):  # Lightning's graceful shutdown ends with sys.exit(1)
            lightning_fit(tmp_path, callback, 3, extra=[lightning_interrupt(1, 0)])
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores further Ctrl-C from then on
    assert runs() == [("fit", "interrupted", "lightning")]
    assert not callback.session.is_measuring


# -- Transformers: no hook for it -----------------------------------------------------------


@pytest.fixture
def hf_interrupted(tmp_path):
    """A Trainer whose train() a Ctrl-C stopped at step 3 of 4; its run is still open."""
    pytest.importorskip("transformers")
    from carbonlog.integrations.transformers import EmissionsCallback

    callback = EmissionsCallback(**OPTIONS)
    trainer = hf_trainer(tmp_path, callback, 2, extra=[hf_interrupt(3)], save_strategy="no")
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert runs() == [("fit", "running", "transformers")]
    return callback, trainer, only_run_id()


def test_transformers_next_train_closes_the_interrupted_run(hf_interrupted):
    callback, trainer, interrupted = hf_interrupted
    trainer.train()
    assert status_of(interrupted) == "interrupted"
    assert runs()[1:] == [("fit", "completed", "transformers")]
    assert callback.summary.status == "completed"


def test_transformers_a_new_trainer_closes_the_interrupted_run(tmp_path, hf_interrupted):
    callback, _, interrupted = hf_interrupted
    trainer = hf_trainer(tmp_path / "again", callback, 1, save_strategy="no")
    assert status_of(interrupted) == "interrupted"  # at the Trainer's construction
    assert trainer.evaluate()["eval_carbon/energy_kwh"] > 0  # measured on its own
    assert runs()[1:] == [("inference", "completed", "transformers")]


# -- Keras: no hook for it ------------------------------------------------------------------


@pytest.fixture
def keras_interrupted():
    """A model whose fit a Ctrl-C stopped in epoch 1 of 3; its run is still open."""
    pytest.importorskip("keras")
    from carbonlog.integrations.keras import EmissionsCallback

    callback, model = EmissionsCallback(**OPTIONS), keras_model()
    with pytest.raises(KeyboardInterrupt):
        keras_fit(model, [callback, keras_interrupt(1, 2)], 3)
    assert runs() == [("fit", "running", "keras")]
    return callback, model, only_run_id()


@pytest.mark.parametrize("then", ["fit", "evaluate", "predict"])
def test_keras_next_call_closes_the_interrupted_run(keras_interrupted, then):
    callback, model, interrupted = keras_interrupted
    x, y = keras_data()
    if then == "fit":
        keras_fit(model, [callback], 2)
    elif then == "evaluate":
        model.evaluate(x, y, verbose=0, callbacks=[callback])
    else:
        model.predict(x, verbose=0, callbacks=[callback])
    stage = {"fit": "fit", "evaluate": "test", "predict": "predict"}[then]
    assert status_of(interrupted) == "interrupted"
    assert runs()[1:] == [(stage, "completed", "keras")]
    assert callback.session.last_summary.status == "completed"
    assert not callback.session.is_measuring


def test_keras_validation_inside_a_fit_does_not_close_it():
    """fit's own validation reuses fit's CallbackList: the fit goes on, one run, completed."""
    pytest.importorskip("keras")
    from carbonlog.integrations.keras import EmissionsCallback

    x, y = keras_data()
    callback = EmissionsCallback(**OPTIONS)
    history = keras_model().fit(x, y, epochs=2, validation_split=0.25, verbose=0,
                                callbacks=[callback])  # fmt: skip
    assert len(history.history["carbon/energy_kwh"]) == 2
    assert runs() == [("fit", "completed", "keras")]


def test_keras_a_discarded_callback_closes_its_run():
    pytest.importorskip("keras")
    from carbonlog.integrations.keras import EmissionsCallback

    callback = EmissionsCallback(**OPTIONS)
    with pytest.raises(KeyboardInterrupt):
        keras_fit(keras_model(), [callback, keras_interrupt(1, 2)], 3)
    interrupted = only_run_id()
    del callback
    gc.collect()
    assert status_of(interrupted) == "interrupted"


# -- the process exits with the run still open ---------------------------------------------

EXIT_SCRIPTS = {
    "transformers": """
        from carbonlog.integrations.transformers import EmissionsCallback
        from tests.faults.adapter_fits import OPTIONS, hf_interrupt, hf_trainer
        callback = EmissionsCallback(**OPTIONS)
        trainer = hf_trainer(OUT, callback, 2, extra=[hf_interrupt(3)], save_strategy="no")
        try:
            trainer.train()
        except KeyboardInterrupt:
            print("interrupted")
    """,
    "keras": """
        from carbonlog.integrations.keras import EmissionsCallback
        from tests.faults.adapter_fits import OPTIONS, keras_fit, keras_interrupt, keras_model
        callback = EmissionsCallback(**OPTIONS)
        try:
            keras_fit(keras_model(), [callback, keras_interrupt(1, 2)], 3)
        except KeyboardInterrupt:
            print("interrupted")
    """,
}


@pytest.mark.parametrize("framework", EXIT_SCRIPTS)
def test_the_process_exit_closes_the_interrupted_run(tmp_path, framework):
    pytest.importorskip(framework)
    script = f"from pathlib import Path\nOUT = Path({str(tmp_path)!r})\n"
    script += textwrap.dedent(EXIT_SCRIPTS[framework])
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "KERAS_BACKEND": "torch"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "interrupted"
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    assert runs() == [("fit", "interrupted", framework)]
    with Ledger(ledger_path()) as ledger:
        run = ledger.run(only_run_id())
    assert [iv.label for iv in run.intervals][-1] == "end"  # the last interval was closed
