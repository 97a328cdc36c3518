"""The hyperparameter search a run is a trial of: its id, trial and parameters, as the ledger
stores them for `carbonlog runs --by search`."""

from __future__ import annotations

from collections.abc import Mapping


class SearchTrial:
    """The hyperparameter search a session's runs are trials of, for the ledger (`carbonlog
    runs --by search`). `search` is its id: a string, or an Optuna Study (its study_name);
    `trial` a number or name, or an Optuna Trial (its number and params, read as each run
    begins, so what is suggested after the callback is built counts; its study is the search
    when `search` is left out); `trial_params` are parameters to record over the Trial's."""

    def __init__(self, search: object = None, trial: object = None, trial_params=None):
        if search is None:
            search = getattr(trial, "study", None)
        search = getattr(search, "study_name", search)
        if search is not None and (not isinstance(search, str) or not search.strip()):
            raise TypeError(f"search must be a name or an Optuna Study, got {search!r}")
        number = getattr(trial, "number", trial)
        if number is not None and (isinstance(number, bool) or not isinstance(number, int | str)):
            raise TypeError(f"trial must be a number, a name or an Optuna Trial, got {trial!r}")
        if trial_params is not None and not isinstance(trial_params, Mapping):
            raise TypeError(f"trial_params must be a mapping, got {trial_params!r}")
        if search is None and (trial is not None or trial_params):
            raise TypeError("trial= and trial_params= need search= (the search's name)")
        self.search_id = search
        self._trial, self._params = trial, dict(trial_params or {})

    def facts(self) -> dict[str, object]:
        """What is known of search_id, trial and trial_params for the run beginning now (what
        a framework detects fills the rest); {} outside a search."""
        if self.search_id is None:
            return {}
        number = getattr(self._trial, "number", self._trial)
        params = {**(getattr(self._trial, "params", None) or {}), **self._params}
        facts: dict[str, object] = {"search_id": self.search_id}
        if number is not None:
            facts["trial"] = str(number)
        if params:
            facts["trial_params"] = params
        return facts
