"""compare: two runs side by side, with and without a target, and the target syntax."""

from __future__ import annotations

import json
import sys

import pytest

import carbonlog
from carbonlog.compare import Target, compare
from carbonlog.ledger import Ledger
from tests.unit.ledger_worker import record_run

KWH_J = 3.6e6 / 1.5  # joules at the devices for 1 kWh at PUE 1.5 (100 g/kWh: 0.1 kg)


@pytest.fixture
def ledger(tmp_path):
    """A scratch run of 4 epochs of 1 kWh and a fine-tune of 2 epochs of 0.25 kWh."""
    with Ledger(tmp_path / "ledger.sqlite3") as opened:
        record_run(
            opened,
            "scratch",
            [KWH_J] * 4,
            [{"val_accuracy": acc, "val_loss": 1 - acc} for acc in (0.5, 0.7, 0.85, 0.92)],
            task="sst2",
            pretrained=False,
        )
        record_run(
            opened,
            "finetune",
            [KWH_J / 4] * 2,
            [{"val_accuracy": acc, "val_loss": 1 - acc} for acc in (0.91, 0.95)],
            task="sst2",
            pretrained=True,
        )
        yield opened


def test_compare_without_target_shows_totals_and_a_shared_metric(ledger):
    result = compare("scratch", 2, ledger=ledger)
    a, b = result.a, result.b
    assert (a.label, a.status, a.epochs, b.label, b.epochs) == (
        "run 1 (scratch)",
        "completed",
        4,
        "run 2 (finetune)",
        2,
    )
    assert (a.energy_kwh, a.co2_kg) == (pytest.approx(4.0), pytest.approx(0.4))
    assert (b.energy_kwh, b.co2_kg) == (pytest.approx(0.5), pytest.approx(0.05))
    assert (result.metric, a.final, b.final) == ("val_accuracy", 0.92, 0.95)
    assert a.target_kg is None and result.target is None
    assert result.verdict() == "run 2 (finetune) ran with 8x less CO2 than run 1 (scratch)"
    assert result.table().splitlines() == [
        "                    run 1 (scratch)  run 2 (finetune)",
        "status              completed        completed",
        "epochs              4                2",
        "energy              4 kWh            0.5 kWh",
        "CO2                 400 g            50 g",
        "final val_accuracy  0.92             0.95",
        "run 2 (finetune) ran with 8x less CO2 than run 1 (scratch)",
    ]
    assert str(result) == result.table()


def test_compare_with_a_target_gives_energy_and_co2_to_reach_it(ledger):
    result = compare(1, "finetune", target="val_accuracy>=0.9", ledger=ledger)
    a, b = result.a, result.b
    assert (a.target_epoch, a.target_kwh, a.target_kg) == (
        4,
        pytest.approx(4.0),
        pytest.approx(0.4),
    )
    assert (b.target_epoch, b.target_kwh, b.target_kg) == (
        1,
        pytest.approx(0.25),
        pytest.approx(0.025),
    )
    assert result.verdict() == (
        "run 2 (finetune) reached val_accuracy>=0.9 with 16x less CO2 than run 1 (scratch)"
    )
    table = result.table()
    assert "to reach val_accuracy>=0.9  epoch 4: 4 kWh, 400 g  epoch 1: 0.25 kWh, 25 g" in table
    as_dict = json.loads(json.dumps(result.to_dict()))
    assert as_dict["target"] == "val_accuracy>=0.9" and as_dict["b"]["target_epoch"] == 1
    assert as_dict["verdict"] == result.verdict()


@pytest.mark.parametrize(
    ("target", "reached", "verdict"),
    [
        ("val_loss<0.3", (3, 1), "with 12x less CO2"),
        ("val_loss <= 0.08", (4, 2), "with 8x less CO2"),
        ("val_accuracy > 0.93", (None, 2), "only run 2 (finetune) reached val_accuracy>0.93"),
        ("val_accuracy>=0.99", (None, None), "neither run reached val_accuracy>=0.99"),
    ],
)
def test_targets_below_above_and_out_of_reach(ledger, target, reached, verdict):
    result = compare("scratch", "finetune", target=target, ledger=ledger)
    assert (result.a.target_epoch, result.b.target_epoch) == reached
    assert verdict in result.verdict()
    if None in reached:
        assert "not reached" in result.table()


def test_the_metric_shown_can_be_chosen_and_defaults_to_one_both_reported(tmp_path):
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        record_run(ledger, "x", [KWH_J], [{"f1": 0.5, "bleu": 20.0}])
        record_run(ledger, "y", [KWH_J], [{"f1": 0.6}])
        record_run(ledger, "z", [KWH_J])
        assert compare("x", "y", ledger=ledger).metric == "f1"
        assert compare("x", "y", metric="bleu", ledger=ledger).b.final is None
        none = compare("x", "z", ledger=ledger)
    assert none.metric is None and "final" not in none.table()


def test_runs_are_found_by_id_or_name_in_a_ledger_given_by_path(ledger):
    result = compare("1", "finetune", ledger=str(ledger.path))
    assert (result.a.run_id, result.b.run_id) == (1, 2)
    with pytest.raises(ValueError, match="no run 'nope' in the ledger"):
        compare("nope", 1, ledger=ledger)


@pytest.mark.parametrize(
    "text",
    [
        "val_accuracy=0.9",
        "val_accuracy==0.9",
        ">=0.9",
        "val_accuracy>=",
        "val_accuracy>=high",
        "val_accuracy>=0.9 and more",
        "9acc>=0.9",
        "",
        None,
    ],
)
def test_a_bad_target_is_a_clear_error(ledger, text):
    with pytest.raises(ValueError, match=r"bad target .*METRIC OP NUMBER.*>=, <=, >, <"):
        Target.parse(text)
    with pytest.raises(ValueError, match="bad target"):
        compare(1, 2, target=text or "x", ledger=ledger)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("val_accuracy>=0.9", Target("val_accuracy", ">=", 0.9)),
        ("  eval/loss < 1e-2 ", Target("eval/loss", "<", 0.01)),
        ("val.acc>-.5", Target("val.acc", ">", -0.5)),
        ("loss<=3", Target("loss", "<=", 3.0)),
    ],
)
def test_targets_parse(text, parsed):
    assert Target.parse(text) == parsed
    assert parsed.met(parsed.value) == ("=" in parsed.op)


def test_the_package_exports_compare(ledger):
    if "compare" not in carbonlog.__all__:
        pytest.skip("carbonlog/__init__.py does not export compare yet")
    module = sys.modules["carbonlog.compare"]  # imported above: it must not shadow the function
    assert callable(carbonlog.compare) and carbonlog.compare is module.compare
    assert carbonlog.compare(1, 2, ledger=ledger).b.epochs == 2


@pytest.mark.parametrize("text", ["acc>=1e999", "acc>=inf", "acc<-1e999"])
def test_a_target_that_no_run_can_reach_is_refused(text):
    from carbonlog.compare import Target

    with pytest.raises(ValueError, match="bad target"):
        Target.parse(text)


def test_a_target_or_metric_that_neither_run_logged_is_no_such_metric(tmp_path):
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        record_run(ledger, "hf", [KWH_J], [{"eval_accuracy": 0.91, "eval_loss": 0.2}])
        record_run(ledger, "hf2", [KWH_J], [{"eval_accuracy": 0.95, "eval_loss": 0.1}])
        record_run(ledger, "other", [KWH_J], [{"bleu": 20.0}])
        with pytest.raises(ValueError) as refused:
            compare("hf", "hf2", target="val_accuracy>=0.9", ledger=ledger)
        message = str(refused.value)
        assert message.startswith("no such metric: neither run logged 'val_accuracy'")
        assert "(both logged eval_accuracy, eval_loss); did you mean 'eval_accuracy'?" in message
        with pytest.raises(ValueError, match=r"run 1 \(hf\) logged eval_accuracy, eval_loss; "):
            compare("hf", "other", metric="f1", ledger=ledger)
        half = compare("hf", "other", target="eval_accuracy>=0.9", ledger=ledger)
    assert half.verdict() == (
        "only run 1 (hf) reached eval_accuracy>=0.9; run 3 (other) never logged eval_accuracy"
    )


def test_a_run_compared_with_itself_or_with_equal_figures_says_so(ledger):
    itself = compare(1, "scratch", target="val_accuracy>=0.9", ledger=ledger)
    assert itself.verdict() == "run 1 (scratch) is compared with itself"
    assert "x less" not in itself.table()
    record_run(ledger, "again", [KWH_J] * 4, [{"val_accuracy": 0.9}] * 4)
    same = compare("scratch", "again", ledger=ledger)
    assert same.verdict() == ("run 1 (scratch) and run 3 (again) ran with the same CO2, 400 g each")
    equal = compare("scratch", "again", target="val_accuracy>=0.5", ledger=ledger)
    assert equal.verdict() == (
        "run 1 (scratch) and run 3 (again) reached val_accuracy>=0.5 with the same CO2, 100 g each"
    )
    faster = compare("scratch", "again", target="val_accuracy>=0.7", ledger=ledger)
    assert faster.verdict() == (
        "run 3 (again) reached val_accuracy>=0.7 with 2x less CO2 than run 1 (scratch)"
    )


def test_compare_shows_the_energy_per_sample_and_per_token_of_runs_of_different_lengths(tmp_path):
    import dataclasses

    from tests.unit.ledger_worker import interval, run_info

    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        for name, epochs, tokens in (("long", 4, 512.0), ("short", 2, None)):
            run_id = ledger.begin_run(run_info(name))
            for index in range(epochs):  # 1 kWh and 1,000 samples an epoch
                counted = dataclasses.replace(interval(index, KWH_J), samples=1000.0, tokens=tokens)
                ledger.add_interval(run_id, counted)
            ledger.end_run(run_id, "completed", None, 10.0 * epochs)
        result = compare("long", "short", ledger=ledger)
    assert result.a.energy_per_sample_j == pytest.approx(3600.0)  # 4 kWh / 4,000 samples
    assert result.b.energy_per_sample_j == pytest.approx(3600.0)  # the same, half as long
    assert result.a.energy_per_token_j == pytest.approx(4 * 3.6e6 / 2048)
    assert result.b.energy_per_token_j is None
    lines = result.table().splitlines()
    assert [line.split("  ")[0].strip() for line in lines[5:7]] == [
        "energy per sample",
        "energy per token",
    ]
    assert lines[5].split()[-4:] == ["3,600", "J", "3,600", "J"]
    assert lines[6].split()[-3:] == ["7,030", "J", "-"]  # 7,031.25 J, to 3 digits
    assert json.loads(json.dumps(result.to_dict()))["b"]["energy_per_sample_j"] == 3600.0
