"""The search options every adapter takes (search=, trial=, trial_params=), with real Optuna
trials: what each run records, read when the run begins, and the options refused at once."""

from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna")

from carbonlog.session import Session  # noqa: E402
from carbonlog.trials import SearchTrial  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_an_optuna_trial_gives_its_study_number_and_params_when_the_run_begins():
    study = optuna.create_study(study_name="sweep-7")
    trial = study.ask()
    search = SearchTrial(trial=trial)
    assert search.facts() == {"search_id": "sweep-7", "trial": "0"}  # nothing suggested yet
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    trial.suggest_categorical("batch", [16, 32])
    assert search.facts() == {
        "search_id": "sweep-7",
        "trial": "0",
        "trial_params": {"lr": trial.params["lr"], "batch": trial.params["batch"]},
    }


def test_a_study_or_a_name_is_the_search_and_given_params_win():
    study = optuna.create_study(study_name="grid-a")
    fixed = optuna.trial.FixedTrial({"lr": 0.1, "depth": 3}, number=4)  # as HF's DDP ranks use
    fixed.suggest_float("lr", 0.01, 1.0)
    fixed.suggest_int("depth", 1, 9)
    facts = SearchTrial(study, fixed, {"depth": 5, "seed": 1}).facts()
    params = {"lr": 0.1, "depth": 5, "seed": 1}
    assert facts == {"search_id": "grid-a", "trial": "4", "trial_params": params}
    assert SearchTrial("by-hand", 3).facts() == {"search_id": "by-hand", "trial": "3"}
    assert SearchTrial().facts() == {}


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"search": ""}, "search must be a name or an Optuna Study"),
        ({"search": 3}, "search must be a name or an Optuna Study"),
        ({"search": "s", "trial": 1.5}, "trial must be a number, a name or an Optuna Trial"),
        ({"search": "s", "trial": True}, "trial must be a number"),
        ({"search": "s", "trial_params": [1]}, "trial_params must be a mapping"),
        ({"trial": 2}, "need search="),
        ({"trial_params": {"lr": 1}}, "need search="),
    ],
)
def test_bad_search_options_fail_at_construction(options, match):
    with pytest.raises(TypeError, match=match):
        SearchTrial(**options)
    with pytest.raises(TypeError, match=match):
        Session("lightning", ledger=False, **options)
