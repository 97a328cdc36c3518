"""Session, the framework-free part every adapter shares, and the adapters' shared plumbing."""

from __future__ import annotations

import gc
import logging
import time
from types import SimpleNamespace

import pytest

import carbonlog
from carbonlog import metrics
from carbonlog.distributed import Ranks
from carbonlog.integrations._common import (
    cuda_devices,
    find_caller,
    is_available,
    new_session,
    require,
    torch_sum,
    with_options_doc,
)
from carbonlog.ledger import Ledger
from carbonlog.notes import cleaner_region_note
from carbonlog.session import Session

OPTIONS = {"intensity": 100.0, "power_w": {"gpu": 100.0, "cpu": 10.0, "ram": 1.0}}


class OneElement:
    """A stand-in for a one-element tensor: numel() and float()."""

    def __init__(self, value: float, size: int = 1):
        self.value, self.size = value, size

    def numel(self) -> int:
        return self.size

    def __float__(self) -> float:
        return self.value


def test_scalars_keep_the_frameworks_numbers_and_leave_ours_out():
    session = Session("test", **OPTIONS)
    logged = {
        "loss": 0.5,
        "step": 3,
        "val_acc": OneElement(0.9),
        "embedding": OneElement(0.1, size=8),
        "carbon/co2_kg": 1.0,
        "eval_carbon/co2_kg": 1.0,
        "flag": True,
        "name": "bert",
    }
    assert session.scalars(logged) == {"loss": 0.5, "step": 3.0, "val_acc": 0.9}


def test_options_the_adapter_sets_are_refused_and_bad_ones_fail_at_construction():
    with pytest.raises(TypeError, match="reduce: set by the test callback"):
        Session("test", reduce=lambda v: v, **OPTIONS)
    with pytest.raises(ValueError):
        Session("test", pue=0.5, **OPTIONS)
    with pytest.raises(TypeError):
        Session("test", prefix=3, **OPTIONS)


def test_a_fit_ends_with_totals_and_keeps_its_state_for_a_checkpoint():
    session = Session("test", verbose=False, ledger=False, **OPTIONS)
    session.begin("fit", planned_epochs=2)
    time.sleep(0.02)
    epoch = session.epoch_end({"loss": 1.0})
    totals = session.end()
    assert set(totals) == {"carbon/energy_kwh_total", "carbon/co2_kg_total",
                           "carbon/duration_s_total"}  # fmt: skip
    assert totals["carbon/energy_kwh_total"] > epoch["carbon/energy_kwh_total"]
    assert session.fit_summary is session.last_summary
    assert session.state_dict()["epochs_done"] == 1

    session.begin("test")
    staged = session.end()
    assert "carbon/test/duration_s" in staged and "carbon/test/energy_kwh" in staged
    assert session.state_dict()["epochs_done"] == 1  # still the fit's


def test_a_resumed_fit_continues_its_totals():
    first = Session("test", verbose=False, ledger=False, **OPTIONS)
    first.begin("fit")
    first.epoch_end()
    first.end()
    second = Session("test", verbose=False, ledger=False, **OPTIONS)
    assert second.load_state_dict(first.state_dict()) and second.resume_epochs == 1
    second.begin("fit")
    values = second.epoch_end()
    second.end()
    assert second.state_dict()["epochs_done"] == 2
    assert values["carbon/energy_kwh_total"] > first.fit_summary.energy_kwh


def test_a_bad_resume_state_is_refused_once_as_the_fit_begins(carbon_warnings):
    session = Session("test", verbose=False, ledger=False, **OPTIONS)
    assert session.load_state_dict(None) is False and session.resume_epochs is None
    assert session.load_state_dict({"totals_j": {}}, "model.ckpt") is False
    assert session.resume_epochs is None and session.state_dict() == {}
    assert not carbon_warnings  # said when the fit begins, where the rank is known
    session.begin("fit")
    values = session.epoch_end()
    session.end()
    assert values["carbon/energy_kwh_total"] == values["carbon/energy_kwh"]  # from zero
    (warned,) = [record.getMessage() for record in carbon_warnings]
    assert warned.startswith("carbonlog: the resume state in model.ckpt is refused (not a ")
    assert warned.endswith("; energy and CO2 totals start over")


def test_only_global_rank_zero_says_a_state_was_refused(carbon_warnings):
    session = Session("test", verbose=False, ledger=False, **OPTIONS)
    session.refuse_state("the resume state in carbon.json could not be read (truncated)")
    session.begin("fit", ranks=Ranks(rank=1, local_rank=1, world_size=2), reduce=list)
    session.end()
    assert not carbon_warnings


def test_an_abandoned_stage_ends_interrupted_without_waiting_on_other_processes(tmp_path):
    ledger = tmp_path / "ledger.sqlite3"
    session = Session("test", verbose=False, ledger=str(ledger), **OPTIONS)
    sums = []

    def reduce(values):
        sums.append(list(values))
        return values

    session.begin("fit", ranks=Ranks(rank=0, local_rank=0, world_size=2), reduce=reduce)
    session.epoch_end()
    assert len(sums) == 1
    session.abandon()  # what the next fit does first; the others may never join a sum now
    assert len(sums) == 1 and not session.is_measuring
    assert session.fit_summary.status == "interrupted"
    assert session.state_dict()["epochs_done"] == 1  # a resume continues from it
    with Ledger(ledger) as stored:
        assert [run.status for run in stored.runs()] == ["interrupted"]


def test_a_session_discarded_mid_stage_closes_its_run(tmp_path):
    ledger = tmp_path / "ledger.sqlite3"
    session = Session("test", verbose=False, ledger=str(ledger), **OPTIONS)
    session.begin("fit")
    with Ledger(ledger) as stored:
        assert [run.status for run in stored.runs()] == ["running"]
    del session
    gc.collect()
    with Ledger(ledger) as stored:
        assert [run.status for run in stored.runs()] == ["interrupted"]


def test_the_model_card_metadata_of_the_last_fit():
    session = Session("test", verbose=False, ledger=False, pretrained=True, **OPTIONS)
    assert session.model_card_co2() is None
    session.begin("fit")
    session.end()
    co2 = session.model_card_co2(processes=2)
    assert co2["emissions"] == pytest.approx(session.fit_summary.co2_kg * 1000)
    assert (co2["source"], co2["training_type"]) == ("carbonlog", "fine-tuning")


def test_cloud_runs_are_told_the_providers_cleanest_region():
    note = cleaner_region_note(carbonlog.intensity("gcp:us-central1"))
    assert note.startswith("GCP northamerica-northeast1") and "x less than" in note
    assert cleaner_region_note(carbonlog.intensity("FR")) is None


def test_the_session_is_read_only_and_says_what_it_measures():
    session = Session("test", verbose=False, ledger=False, pretrained=False, **OPTIONS)
    assert (session.stage, session.is_measuring, session.should_stop) == (None, False, False)
    session.begin("fit", detected={"model": "Bert", "pretrained": True})
    assert (session.stage, session.is_measuring, session.is_global_zero) == ("fit", True, True)
    assert session.pretrained is False  # declared wins over detected
    session.end()
    assert (session.stage, session.is_measuring, session.prefix) == (None, False, "carbon/")
    with pytest.raises(AttributeError):
        session.stage = "test"
    assert not hasattr(session, "tracker")


# -- the adapters' shared plumbing (integrations/_common.py) --------------------------------


def test_one_options_check_and_one_install_hint():
    session = new_session("test", None, 1.2, 100.0, {"prefix": "co2/", "ledger": False})
    assert session.prefix == "co2/"
    with pytest.raises(ValueError):
        new_session("test", None, 0.5, None, {})
    with pytest.raises(TypeError):
        new_session("test", None, None, None, {"no_such_option": 1})
    with pytest.raises(ImportError, match=r'pip install "carbonlog\[keras\]"'):
        require(False, "keras", "Keras 3")
    require(True, "keras", "Keras 3")
    assert is_available("json") and not is_available("carbonlog_no_such_module")

    @with_options_doc
    class Documented:
        """Args:
        {options}
        """

    assert "pretrained, base_model, task:" in Documented.__doc__


def test_the_cuda_device_a_process_drives():
    assert cuda_devices(SimpleNamespace(type="cpu", index=None)) == []
    assert cuda_devices(SimpleNamespace(type="cuda", index=3)) == [3]


def test_the_caller_is_found_up_the_stack():
    class Handler:
        def call(self, hook):
            return hook()

    handler = Handler()

    def hook():
        return find_caller(lambda owner: owner is handler, depth=3)

    assert handler.call(hook) is handler
    assert hook() is None  # not called through the handler


def test_the_sum_over_processes_is_one_float64_tensor():
    torch = pytest.importorskip("torch")
    seen = []

    def collective(tensor):
        seen.append(tensor.dtype)
        return tensor * 2

    assert torch_sum("cpu", collective)([1.0, 2.5]) == [2.0, 5.0]
    assert seen == [torch.float64]


# -- what is published, and what is said --------------------------------------------------


def test_the_compact_set_by_default_the_full_schema_on_request():
    compact = Session("test", verbose=False, ledger=False, **OPTIONS)
    full = Session("test", verbose=False, ledger=False, metrics="full", **OPTIONS)
    for session in (compact, full):
        session.begin("fit", planned_epochs=4)
    values = [session.epoch_end() for session in (compact, full)]
    steps = [session.step() for session in (compact, full)]
    for session in (compact, full):
        session.end()
    assert set(values[0]) == {f"carbon/{k}" for k in metrics.COMPACT_KEYS}
    known = (*metrics.KEYS, "forecast_co2_kg", "forecast_energy_kwh")  # no scratch reference
    assert set(values[1]) == {f"carbon/{k}" for k in known}
    assert set(steps[0]) == {f"carbon/step/{k}" for k in metrics.COMPACT_KEYS}
    assert "carbon/step/gpu_kwh" in steps[1]
    with pytest.raises(ValueError, match="metrics must be one of"):
        Session("test", metrics="compactest", **OPTIONS)
    with pytest.raises(TypeError, match="metrics must be a string"):
        Session("test", metrics=["energy_kwh"], **OPTIONS)


def test_the_provenance_of_the_running_stage():
    session = Session("test", verbose=False, ledger=False, prefix="co2/", **OPTIONS)
    assert session.provenance() == {}
    session.begin("fit")
    assert session.provenance() == {
        "co2/location": "USER",
        "co2/intensity_g_per_kwh": 100.0,
        "co2/intensity_source": "user",
        "co2/pue": 1.0,
        "co2/measured": "none",
        "co2/estimated": "gpu,cpu,ram",
    }
    session.end()
    assert session.provenance() == {}


def test_running_totals_at_the_last_edge_or_summed_now():
    session = Session("test", verbose=False, ledger=False, **OPTIONS)
    assert session.running_totals() == {}
    sums = []

    def reduce(values):
        sums.append(len(values))
        return values

    session.begin("fit", ranks=Ranks(rank=0, local_rank=0, world_size=2), reduce=reduce)
    assert session.running_totals() == {"carbon/energy_kwh_total": 0.0, "carbon/co2_kg_total": 0.0}
    time.sleep(0.01)
    now = session.running_totals(now=True)
    assert sums == [6] and now["carbon/energy_kwh_total"] > 0  # one summed peek, no edge
    epoch = session.epoch_end()
    assert session.running_totals() == {k: epoch[k] for k in now}
    assert epoch["carbon/energy_kwh_total"] > now["carbon/energy_kwh_total"]
    session.step()  # this process's own piece: no sum
    session.step(summed=True)
    assert sums == [6, 28, 6]  # the edge: joules, intensity, flags, bands, methods, work
    session.end()


def test_verbose_false_says_nothing_and_notes_come_from_global_rank_zero_alone(carbon_log):
    quiet = Session("test", verbose=False, ledger=False, location="gcp:us-central1",
                    power_w=OPTIONS["power_w"])  # fmt: skip
    quiet.begin("fit", planned_epochs=3)
    quiet.epoch_end()
    quiet.epoch_end()
    quiet.end()
    assert not carbon_log

    def chatty(rank: int) -> list[str]:
        carbon_log.clear()
        session = Session("test", ledger=False, location="gcp:us-central1",
                          power_w=OPTIONS["power_w"])  # fmt: skip
        ranks = Ranks(rank=rank, local_rank=rank, world_size=2)
        session.begin("fit", ranks=ranks, reduce=lambda values: values, planned_epochs=3)
        session.epoch_end()
        session.epoch_end()
        session.end()
        return [r.getMessage() for r in carbon_log if r.levelno >= logging.INFO]

    said = chatty(0)
    assert any("would emit" in m for m in said)  # the cleaner region, as the fit begins
    assert any("this run will use about" in m for m in said)  # the forecast
    assert any(m.startswith("carbonlog: fit used") for m in said)  # the summary
    assert chatty(1) == []


def test_work_counted_here_or_everywhere_reaches_the_interval_and_the_summary():
    def interval_samples(rank: int, everywhere: bool) -> tuple[float | None, float | None]:
        session = Session("test", verbose=False, ledger=False, **OPTIONS)
        ranks = Ranks(rank=rank, local_rank=rank, world_size=2)
        session.begin("fit", ranks=ranks, reduce=lambda values: values)  # this rank's part
        session.add_work(samples=8, tokens=96, everywhere=everywhere)
        session.add_work(samples=4)
        session.epoch_end()
        session.end()
        summary = session.last_summary
        return summary.intervals[0].samples, summary.samples

    assert interval_samples(0, everywhere=False) == (12.0, 12.0)
    assert interval_samples(1, everywhere=False) == (12.0, 12.0)
    assert interval_samples(0, everywhere=True) == (12.0, 12.0)  # rank zero brings the count
    assert interval_samples(1, everywhere=True) == (4.0, 4.0)  # the others bring none of it


def test_work_counted_before_a_stage_begins_is_not_counted():
    session = Session("test", verbose=False, ledger=False, **OPTIONS)
    session.add_work(samples=8)
    session.begin("fit")
    session.end()
    assert session.last_summary.samples is None
