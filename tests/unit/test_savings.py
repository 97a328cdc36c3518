"""Savings: each reference kind (ledger scratch run, model card on disk, published table), their
order, the statement, the per-epoch figure, the hint for scratch runs, the shipped table."""

from __future__ import annotations

import re
import sys
from types import SimpleNamespace

import pytest

from carbonlog import savings
from carbonlog.ledger import Ledger
from carbonlog.savings import Reference
from tests.unit.ledger_worker import record_run

J_FOR_1_KG = 3.6e6 / 1.5 * 10  # joules that make 1 kg at PUE 1.5 and 100 g/kWh

CARD = """---
language: en
license: apache-2.0
co2_eq_emissions:
  emissions: 149200
  source: "ML CO2 Impact calculator"
  training_type: pre-training
  hardware_used: 8 16GB V100
---

# A model
"""


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "ledger.sqlite3") as opened:
        yield opened


def write_card(directory, text: str = CARD):
    directory.mkdir(parents=True)
    (directory / "README.md").write_text(text)
    return directory


# -- (a) the ledger ---------------------------------------------------------------------------


def test_a_scratch_run_of_the_same_task_is_the_first_reference(ledger):
    scratch = record_run(
        ledger, "scratch", [J_FOR_1_KG] * 8, task="sst2", pretrained=False, stage="fit"
    )
    record_run(
        ledger, "failed scratch", [J_FOR_1_KG], status="failed", task="sst2", pretrained=False
    )
    record_run(ledger, "other task", [J_FOR_1_KG], task="mnist", pretrained=False)
    record_run(ledger, "a test stage", [J_FOR_1_KG], task="sst2", pretrained=False, stage="test")
    found = savings.find_reference("bert-base-uncased", "sst2", ledger)
    assert found == Reference(
        pytest.approx(8.0), pytest.approx(80.0), f"run {scratch}, same task", "ledger"
    )
    assert found.statement(0.42) == (
        f"fine-tuning used 420 g CO2; from scratch (run {scratch}, same task) used 8 kg: 19x less"
    )
    assert savings.ledger_reference(ledger, "sst2", exclude_run_id=scratch) is None
    assert savings.ledger_reference(ledger, "mnist") is not None
    assert savings.ledger_reference(None, "sst2") is None
    assert savings.ledger_reference(ledger, None) is None


def test_reference_for_excludes_the_run_itself_and_never_raises(ledger):
    scratch = record_run(ledger, "scratch", [J_FOR_1_KG * 2], task="sst2", pretrained=False)
    found = savings.reference_for(ledger, "no/such-model", "sst2", exclude_run_id=99)
    assert found.description == f"run {scratch}, same task"
    assert savings.reference_for(ledger, "no/such-model", "sst2", exclude_run_id=scratch) is None
    assert savings.reference_for(None, "bert-base-uncased", None).kind == "published"
    unreadable = SimpleNamespace(runs=lambda **filters: 1 / 0)
    assert savings.reference_for(unreadable, "bert-base-uncased", "sst2") is None


def test_the_reference_reaches_every_rank_through_reduce():
    """Rank zero looks it up; the sum over ranks carries it to the others (zeros there)."""
    sent: list[list[float]] = []

    def reduce(values):
        sent.append(list(values))
        return [v + w for v, w in zip(values, [652.3, 1507.0, 1.0, 1.0], strict=True)]

    shared = savings.share_reference(None, reduce, world_size=2)
    assert sent == [[0.0, 0.0, 0.0, 0.0]]
    assert (shared.kg, shared.kwh, shared.kind) == (652.3, 1507.0, "shared")
    assert savings.share_reference(None, lambda v: 1 / 0, world_size=2) is None  # never raises


def test_rank_zero_sends_its_reference_and_keeps_it():
    found = savings.published_reference("bert-base-uncased")
    sent: list[list[float]] = []
    assert savings.share_reference(found, lambda v: sent.append(list(v)) or v, 2) is found
    assert sent == [[652.3, 1507.0, 1.0, 1.0]]
    assert savings.share_reference(found, None, world_size=4) is found
    assert savings.share_reference(found, lambda v: 1 / 0, world_size=1) is found  # no sum alone
    assert savings.share_reference(None, lambda v: v, world_size=2) is None  # none anywhere
    card_sum = [2.5, 0.0, 0.0, 1.0]  # rank zero's card figure: kg without kWh
    shared = savings.share_reference(None, lambda v: card_sum, world_size=2)
    assert (shared.kg, shared.kwh) == (2.5, None)


# -- (b) the model card on disk ---------------------------------------------------------------


def test_a_local_model_directory_card_gives_its_own_emissions(tmp_path):
    model = write_card(tmp_path / "my-distilgpt2")
    found = savings.find_reference(str(model), hub_cache=tmp_path / "empty")
    assert (found.kg, found.kwh, found.kind) == (pytest.approx(149.2), None, "model_card")
    assert found.description == "my-distilgpt2 model card, ML CO2 Impact calculator"


@pytest.mark.parametrize("variable", ["HF_HUB_CACHE", "HF_HOME"])
def test_a_cached_hub_snapshot_card_is_found(tmp_path, monkeypatch, variable):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    hub = tmp_path / "hub"
    monkeypatch.setenv(variable, str(hub if variable == "HF_HUB_CACHE" else tmp_path))
    write_card(
        hub / "models--acme--tiny-bert" / "snapshots" / "0123abc", CARD.replace("149200", "2500")
    )
    found = savings.model_card_reference("acme/tiny-bert")
    assert found.kg == pytest.approx(2.5) and found.description.startswith("acme/tiny-bert")
    assert savings.model_card_reference("acme/other") is None


@pytest.mark.parametrize(
    ("field", "kg"),
    [
        ("co2_eq_emissions: 1500", 1.5),
        ("co2_eq_emissions: 149.2 kg", 149.2),
        ("co2_eq_emissions: '300 g'", 0.3),
        ("co2_eq_emissions:\n  emissions: 0.5 t\n  source: paper", 500.0),
        ("co2_eq_emissions:\n  emissions: 42\n  training_type: fine-tuning", None),
        ("co2_eq_emissions: unknown", None),
        ("license: mit", None),
    ],
)
@pytest.mark.parametrize("yaml_installed", [True, False])
def test_card_emissions_in_every_shape_with_or_without_pyyaml(
    tmp_path, monkeypatch, field, kg, yaml_installed
):
    if not yaml_installed:
        monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml -> ImportError
    model = write_card(tmp_path / "m", f"---\nlanguage: en\n{field}\ntags: [x]\n---\ntext\n")
    found = savings.model_card_reference(str(model))
    assert (found and found.kg) == (kg and pytest.approx(kg))


def test_a_card_without_front_matter_or_readme_is_no_reference(tmp_path):
    assert savings.model_card_reference(str(write_card(tmp_path / "a", "# only text"))) is None
    (tmp_path / "b").mkdir()
    assert savings.model_card_reference(str(tmp_path / "b")) is None


# -- (c) the published table ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "row"),
    [
        ("bert-base-uncased", "bert-base"),
        ("google-bert/bert-base-uncased", "bert-base"),
        ("BERT-base-multilingual-cased", "bert-base"),
        ("bert-large-uncased-whole-word-masking", "bert-large"),
        ("roberta-base", "roberta"),
        ("FacebookAI/roberta-large", "roberta"),
        ("gpt2", "gpt2"),
        ("openai-community/gpt2-xl", "gpt2"),
        ("distilgpt2", "distilgpt2"),
        ("t5-small", "t5-small"),
        ("google-t5/t5-11b", "t5-11b"),
        ("bigscience/bloom", "bloom"),
        ("meta-llama/Llama-2-7b-hf", "llama-2-7b"),
        ("meta-llama/Llama-2-13b-chat-hf", "llama-2-13b"),
        ("meta-llama/Meta-Llama-3-8B-Instruct", "llama-3-8b"),
        ("meta-llama/Llama-3.1-405B", "llama-3.1-405b"),
        ("meta-llama/Llama-3.3-70B-Instruct", "llama-3.1-70b"),
        ("meta-llama/Llama-3.2-1B", "llama-3.2-1b"),
        ("huggyllama/llama-30b", "llama-33b"),
        ("facebook/opt-175b", "opt-175b"),
        ("/data/hub/models--meta-llama--Llama-2-70b-hf/snapshots/abc/", "llama-2-70b"),
        ("./checkpoints/t5-base", "t5-base"),
        ("bigscience/bloom-560m", None),
        ("bert-base-german-cased-by-someone", None),
        ("facebook/opt-125m", None),
        ("my-model", None),
    ],
)
def test_published_rows_match_checkpoint_names(name, row):
    found = savings.published_row(name)
    assert (found and found.model) == row


def test_published_references_state_their_source_and_scale_with_parameters():
    bert = savings.published_reference("bert-base-uncased")
    assert (bert.kg, bert.kwh, bert.kind) == (652.3, 1507.0, "published")
    assert bert.description == "bert-base pre-training, Strubell, Ganesh & McCallum 2019"
    assert bert.statement(0.42) == (
        "fine-tuning used 420 g CO2; from scratch (bert-base pre-training, Strubell, Ganesh & "
        "McCallum 2019) used 652 kg: 1,553x less"
    )
    small = savings.published_reference("t5-small")
    assert small.kg == pytest.approx(46700 * 60 / 11000)
    assert small.kwh == pytest.approx(85700 * 60 / 11000)
    assert "t5-11b (Patterson et al. 2021) scaled by parameters, 60M / 11,000M" in (
        small.description
    )
    assert savings.published_reference("meta-llama/Llama-2-7b-hf").kg == 31220
    assert savings.published_reference("gpt2") is None  # hardware and time only
    assert savings.published_reference("unknown") is None


def test_the_shipped_table_is_sourced_and_consistent():
    rows = savings.published_table()
    names = {row.model for row in rows}
    assert len(names) == len(rows)
    assert {"bert-base", "roberta", "gpt2", "t5-11b", "bloom", "llama-2-7b", "llama-3-8b"} <= names
    for row in rows:
        re.compile(row.match)
        assert row.source and row.year and 2017 <= row.year <= 2025, row.model
        assert row.params_m > 0 and row.family
        assert (row.energy_kwh is None) == (row.energy_basis == ""), row.model
        assert row.co2_kg or row.hardware or row.scale_from, row.model
        if row.scale_from:
            base = next(r for r in rows if r.model == row.scale_from)
            assert base.co2_kg and base.family == row.family and row.co2_kg is None
        if row.co2_kg and row.energy_kwh:  # every source's implied intensity is plausible
            assert 50 <= row.co2_kg / row.energy_kwh * 1000 <= 700, row.model


# -- the order, the statement, the per-epoch figure -------------------------------------------


def test_the_ledger_wins_over_the_card_which_wins_over_the_table(ledger, tmp_path):
    card = write_card(
        tmp_path / "hub" / "models--google-bert--bert-base-uncased" / "snapshots" / "a"
    )
    assert (
        savings.find_reference(
            "google-bert/bert-base-uncased", "sst2", ledger, hub_cache=tmp_path / "none"
        ).kind
        == "published"
    )
    assert (
        savings.find_reference(
            "google-bert/bert-base-uncased", "sst2", ledger, hub_cache=tmp_path / "hub"
        ).kind
        == "model_card"
    )
    record_run(ledger, "scratch", [J_FOR_1_KG], task="sst2", pretrained=False)
    assert (
        savings.find_reference(
            "google-bert/bert-base-uncased", "sst2", ledger, hub_cache=tmp_path / "hub"
        ).kind
        == "ledger"
    )
    assert card.is_dir()
    assert savings.find_reference(None, None, None) is None


@pytest.mark.parametrize(
    ("run_kg", "words"),
    [
        (0.42, "used 8.1 kg: 19x less"),
        (4.05, "used 8.1 kg: 2x less"),
        (16.2, "used 8.1 kg: fine-tuning used 2x more"),
        (0.0, "used 8.1 kg"),
    ],
)
def test_the_one_line_statement(run_kg, words):
    line = Reference(8.1, None, "run 12, same task", "ledger").statement(run_kg)
    assert line.startswith("fine-tuning used ") and line.endswith(words)
    assert "from scratch (run 12, same task)" in line


def test_saved_kg_is_the_reference_minus_the_run_so_far():
    reference = Reference(8.1, None, "run 12, same task", "ledger")
    assert reference.saved_kg(0.1) == pytest.approx(8.0)
    assert savings.saved_vs_scratch_kg(reference, 9.1) == pytest.approx(-1.0)
    assert savings.saved_vs_scratch_kg(None, 0.1) is None


def test_masses_print_from_grams_to_tonnes():
    from carbonlog.report.text import format_co2

    assert [format_co2(kg) for kg in (0.42, 8.1, 652.3, 24690.0)] == [
        "420 g",
        "8.1 kg",
        "652 kg",
        "24.7 t",
    ]


# -- the hint for scratch runs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("BertForSequenceClassification", "bert"),
        ("RobertaForMaskedLM", "roberta"),
        ("GPT2LMHeadModel", "gpt2"),
        ("T5ForConditionalGeneration", "t5"),
        ("LlamaForCausalLM", "llama"),
        ("bert-base-uncased", "bert"),
    ],
)
def test_a_scratch_run_of_a_known_architecture_gets_a_hint(model, family):
    hint = savings.scratch_hint({"pretrained": False, "model": model})
    assert hint.startswith(f"{model} is trained from scratch; pretrained {family} ")
    assert "a cost already paid" in hint and "typically takes a few GPU-hours" in hint


def test_the_hint_cites_the_figure_and_the_users_own_fine_tuning_runs(ledger):
    record_run(ledger, "ft1", [J_FOR_1_KG * 0.2], task="sst2", pretrained=True)
    record_run(ledger, "ft2", [J_FOR_1_KG * 0.4], task="sst2", pretrained=True)
    record_run(ledger, "ft3", [J_FOR_1_KG * 0.9], task="sst2", pretrained=True)
    hint = savings.scratch_hint(
        {"pretrained": False, "model": "BertForSequenceClassification", "task": "sst2"}, ledger
    )
    assert "(bert-base pre-training, Strubell, Ganesh & McCallum 2019: 652 kg CO2" in hint
    assert hint.endswith("your 3 fine-tuning run(s) of task 'sst2' used a median of 400 g CO2")


@pytest.mark.parametrize(
    "run_info",
    [
        {"pretrained": True, "model": "BertForSequenceClassification"},
        {"pretrained": None, "model": "BertForSequenceClassification"},
        {"pretrained": False, "model": "MyConvNet"},
        {"pretrained": False, "model": "Optimus"},
        {"pretrained": False},
    ],
)
def test_no_hint_for_fine_tunes_unknowns_and_unknown_architectures(run_info):
    assert savings.scratch_hint(run_info) is None
