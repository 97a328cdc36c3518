"""Damaged, hostile and newer resume states in real fits of the three frameworks.

A first fit writes a sound state where its framework keeps it (a Lightning checkpoint, the HF
checkpoint's `trainer_state.json`, the Keras `state_path` sidecar); the state is damaged in one
way, and a second fit resumes from it. Every fit must finish, a refused state must say so once
and start the totals over, and a newer state whose fields read soundly must continue them. A
generous budget with on_budget="stop" rides along: an absurd total taken as read stops the fit.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest

from tests.faults.adapter_fits import OPTIONS, hf_trainer, keras_fit, keras_model, lightning_fit

# Keras' torch backend converts tensors with np.array(copy=False): noise from numpy 2, not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
BUDGETED = {**OPTIONS, "budget_kwh": 1.0, "on_budget": "stop"}
FIRST_EPOCHS, LAST_EPOCH = 2, 4
REFUSED = "totals start over"
NEWER = "written by a newer carbonlog"


def _without(state: dict, *keys: str) -> dict:
    return {k: v for k, v in state.items() if k not in keys}


DAMAGE = {
    "missing keys": lambda s: _without(s, "totals_j", "co2_kg_total"),
    "an empty state": lambda s: {},
    "a string total": lambda s: {**s, "energy_kwh_total": "0.5"},
    "joules as a list": lambda s: {**s, "totals_j": [1.0, 2.0, 3.0]},
    "a None total": lambda s: {**s, "co2_kg_total": None},
    "epochs in words": lambda s: {**s, "epochs_done": "three"},
    "non-numeric epoch figures": lambda s: {**s, "epoch_kwh": ["a", "b"]},
    "a negative total": lambda s: {**s, "energy_kwh_total": -1.0},
    "a NaN total": lambda s: {**s, "co2_kg_total": math.nan},
    "an inf total": lambda s: {**s, "energy_kwh_total": math.inf},
    "inf joules": lambda s: {**s, "totals_j": {**s["totals_j"], "gpu": math.inf}},
    "a non-mapping": lambda s: [1, 2, 3],
    "a newer version it cannot read": lambda s: {"version": 7, "totals": {"kwh": 1.0}},
    "a truncated entry": lambda s: json.dumps(s)[:40],
}
READABLE_NEWER = {"version": 7, "carbon_intensity_trace": [[0, 52.0]]}
"""What a newer carbonlog might add to a state whose fields this one reads."""


def assert_outcome(summary, carried: dict | None, carbon_warnings, said: str) -> None:
    """The fit completed; its totals count from `carried` (None: from zero); one warning."""
    assert summary.status == "completed" and summary.stop_reason is None
    epochs = [iv for iv in summary.intervals if iv.label == "epoch"]
    assert len(epochs) == LAST_EPOCH - FIRST_EPOCHS  # no epoch lost, no budget stop
    before = carried["energy_kwh_total"] if carried else 0.0
    own = sum(iv.energy_kwh for iv in summary.intervals)
    assert summary.energy_kwh == pytest.approx(before + own, rel=1e-9)
    assert all(math.isfinite(iv.energy_kwh_total) for iv in summary.intervals)
    warned = [record.getMessage() for record in carbon_warnings]
    assert len(warned) == 1 and said in warned[0], warned


# -- Lightning: the callback's entry in the checkpoint ---------------------------------------


@pytest.fixture(scope="module")
def lightning_checkpoint(tmp_path_factory):
    pytest.importorskip("lightning")
    import torch

    from carbonlog.integrations.lightning import EmissionsCallback

    folder = tmp_path_factory.mktemp("lightning")
    lightning_fit(folder, EmissionsCallback(**OPTIONS), FIRST_EPOCHS, save=folder / "ckpt")
    path = folder / "ckpt" / "last.ckpt"
    return path, torch.load(path, weights_only=False)["callbacks"]["EmissionsCallback"]


def resume_lightning(tmp_path, lightning_checkpoint, state):
    """The fit resumed from the checkpoint with `state` as the callback's entry (an empty
    entry, what the callback writes before any fit, Lightning itself never hands over)."""
    import torch

    from carbonlog.integrations.lightning import EmissionsCallback

    path, _ = lightning_checkpoint
    checkpoint = torch.load(path, weights_only=False)
    checkpoint["callbacks"]["EmissionsCallback"] = state
    torch.save(checkpoint, tmp_path / "damaged.ckpt")
    callback = EmissionsCallback(**BUDGETED)
    trainer = lightning_fit(tmp_path, callback, LAST_EPOCH, ckpt_path=tmp_path / "damaged.ckpt")
    assert trainer.current_epoch == LAST_EPOCH
    return callback.summary


@pytest.mark.parametrize("damage", [kind for kind in DAMAGE if kind != "an empty state"])
def test_lightning_refuses_a_damaged_state(tmp_path, lightning_checkpoint, damage, carbon_warnings):
    state = DAMAGE[damage](dict(lightning_checkpoint[1]))
    summary = resume_lightning(tmp_path, lightning_checkpoint, state)
    assert_outcome(summary, None, carbon_warnings, REFUSED)


def test_lightning_continues_a_readable_newer_state(
    tmp_path, lightning_checkpoint, carbon_warnings
):
    good = lightning_checkpoint[1]
    summary = resume_lightning(tmp_path, lightning_checkpoint, {**good, **READABLE_NEWER})
    assert_outcome(summary, good, carbon_warnings, NEWER)


# -- Transformers: stateful_callbacks["carbonlog"] in the checkpoint's trainer_state.json ----


@pytest.fixture(scope="module")
def hf_checkpoint(tmp_path_factory):
    pytest.importorskip("transformers")
    from carbonlog.integrations.transformers import STATE_KEY, EmissionsCallback

    out = tmp_path_factory.mktemp("transformers")
    hf_trainer(out, EmissionsCallback(**OPTIONS), FIRST_EPOCHS).train()
    checkpoint = out / "checkpoint-4"
    saved = json.loads((checkpoint / "trainer_state.json").read_text())
    return checkpoint, saved["stateful_callbacks"][STATE_KEY]


def resume_hf(tmp_path, hf_checkpoint, state):
    from carbonlog.integrations.transformers import STATE_KEY, EmissionsCallback

    source, _ = hf_checkpoint
    checkpoint = shutil.copytree(source, tmp_path / "damaged")
    trainer_state = json.loads((checkpoint / "trainer_state.json").read_text())
    trainer_state["stateful_callbacks"][STATE_KEY] = state
    (checkpoint / "trainer_state.json").write_text(json.dumps(trainer_state))  # NaN as NaN
    callback = EmissionsCallback(**BUDGETED)
    trainer = hf_trainer(tmp_path / "out", callback, LAST_EPOCH)
    trainer.train(resume_from_checkpoint=str(checkpoint))
    assert trainer.state.epoch == LAST_EPOCH
    return callback.summary


@pytest.mark.parametrize("damage", DAMAGE)
def test_transformers_refuses_a_damaged_state(tmp_path, hf_checkpoint, damage, carbon_warnings):
    summary = resume_hf(tmp_path, hf_checkpoint, DAMAGE[damage](dict(hf_checkpoint[1])))
    assert_outcome(summary, None, carbon_warnings, REFUSED)


def test_transformers_continues_a_readable_newer_state(tmp_path, hf_checkpoint, carbon_warnings):
    good = hf_checkpoint[1]
    summary = resume_hf(tmp_path, hf_checkpoint, {**good, **READABLE_NEWER})
    assert_outcome(summary, good, carbon_warnings, NEWER)


# -- Keras: the state_path sidecar -----------------------------------------------------------


@pytest.fixture(scope="module")
def keras_sidecar(tmp_path_factory):
    pytest.importorskip("keras")
    from carbonlog.integrations.keras import EmissionsCallback

    path = tmp_path_factory.mktemp("keras") / "carbon.json"
    keras_fit(keras_model(), [EmissionsCallback(state_path=path, **OPTIONS)], FIRST_EPOCHS)
    return json.loads(path.read_text())


def resume_keras(tmp_path, content: str | bytes):
    from carbonlog.integrations.keras import EmissionsCallback

    path = tmp_path / "carbon.json"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    callback = EmissionsCallback(state_path=path, **BUDGETED)
    history = keras_fit(keras_model(), [callback], LAST_EPOCH, initial_epoch=FIRST_EPOCHS)
    assert history.epoch == list(range(FIRST_EPOCHS, LAST_EPOCH))
    assert json.loads(path.read_text()) == callback.session.state_dict()  # sound again
    return callback.summary


@pytest.mark.parametrize("damage", DAMAGE)
def test_keras_refuses_a_damaged_sidecar(tmp_path, keras_sidecar, damage, carbon_warnings):
    summary = resume_keras(tmp_path, json.dumps(DAMAGE[damage](dict(keras_sidecar))))
    assert_outcome(summary, None, carbon_warnings, REFUSED)


@pytest.mark.parametrize(
    "text",
    [lambda s: json.dumps(s)[:40], lambda s: "", lambda s: "[" * 100_000, lambda s: b"\xff\xfe{}"],
    ids=["truncated", "empty", "nested too deep", "not UTF-8"],
)
def test_keras_refuses_a_sidecar_it_cannot_parse(tmp_path, keras_sidecar, text, carbon_warnings):
    summary = resume_keras(tmp_path, text(keras_sidecar))
    assert_outcome(summary, None, carbon_warnings, REFUSED)


def test_keras_continues_a_readable_newer_sidecar(tmp_path, keras_sidecar, carbon_warnings):
    summary = resume_keras(tmp_path, json.dumps({**keras_sidecar, **READABLE_NEWER}))
    assert_outcome(summary, keras_sidecar, carbon_warnings, NEWER)
