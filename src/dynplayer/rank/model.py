"""The gradient-boosted ranker behind one small interface (fit / predict / save / load).

Two backends, picked by measurement (`dynplayer bench ranker --backend ...`): LightGBM's
lambdarank and XGBoost's `rank:ndcg`. Groups are playlists; labels are 1 for a held-out track.
Models are saved in the libraries' own text/JSON formats (no pickle).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.errors import ArtifactError, ConfigError

BACKENDS = ("lightgbm", "xgboost")
MODEL_FILES = {"lightgbm": "model.txt", "xgboost": "model.json"}


@dataclass
class RankerParams:
    backend: str = "lightgbm"
    num_leaves: int = 31
    learning_rate: float = 0.05
    rounds: int = 300
    min_child_samples: int = 50
    feature_fraction: float = 0.9
    seed: int = 0
    threads: int = 2
    extra: dict[str, Any] = field(default_factory=dict)


def _xgboost() -> Any:
    try:
        import xgboost
    except ImportError as exc:
        raise ConfigError("the xgboost backend needs `pip install 'dynplayer[xgboost]'`") from exc
    return xgboost


def _groups(rows: np.ndarray) -> np.ndarray:
    """Group sizes of a row array sorted ascending (every row id present at least once)."""
    starts = np.r_[0, np.flatnonzero(rows[1:] != rows[:-1]) + 1]
    return np.diff(np.r_[starts, rows.shape[0]])


class Ranker:
    """A fitted ranker: `predict(features)` -> scores (higher = better)."""

    def __init__(self, params: RankerParams, booster: Any, features: list[str],
                 best_rounds: int | None = None) -> None:
        self.params = params
        self.booster = booster
        self.features = features
        self.best_rounds = best_rounds

    @classmethod
    def fit(cls, params: RankerParams, features: list[str], x: np.ndarray, y: np.ndarray,
            rows: np.ndarray, x_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
            rows_val: np.ndarray | None = None) -> Ranker:
        """Fit on candidates grouped by `rows` (sorted); stop early on the validation groups'
        NDCG@10 when they are given."""
        if params.backend not in BACKENDS:
            raise ConfigError(f"ranker backend must be one of {', '.join(BACKENDS)}, "
                              f"got {params.backend!r}")
        has_val = x_val is not None and y_val is not None and rows_val is not None
        if params.backend == "lightgbm":
            import lightgbm as lgb

            train = lgb.Dataset(x, y, group=_groups(rows), feature_name=features,
                                free_raw_data=True)
            valid = []
            if has_val:
                assert x_val is not None and rows_val is not None
                valid = [lgb.Dataset(x_val, y_val, group=_groups(rows_val), reference=train)]
            cfg = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [10],
                   "num_leaves": params.num_leaves, "learning_rate": params.learning_rate,
                   "min_child_samples": params.min_child_samples,
                   "feature_fraction": params.feature_fraction,
                   "lambdarank_truncation_level": 20, "seed": params.seed,
                   "deterministic": True, "num_threads": params.threads, "verbosity": -1,
                   **params.extra}
            callbacks: list[Any] = [lgb.early_stopping(30, verbose=False)] if has_val else []
            booster = lgb.train(cfg, train, num_boost_round=params.rounds, valid_sets=valid,
                                callbacks=callbacks)
            best = booster.best_iteration or params.rounds
            return cls(params, booster, features, best)
        xgb = _xgboost()
        dtrain = xgb.DMatrix(x, y, feature_names=features)
        dtrain.set_group(_groups(rows))
        evals = []
        if has_val:
            assert x_val is not None and rows_val is not None
            dval = xgb.DMatrix(x_val, y_val, feature_names=features)
            dval.set_group(_groups(rows_val))
            evals = [(dval, "val")]
        cfg = {"objective": "rank:ndcg", "eval_metric": "ndcg@10", "eta": params.learning_rate,
               "max_leaves": params.num_leaves, "grow_policy": "lossguide",
               "tree_method": "hist", "min_child_weight": 1.0,
               "colsample_bytree": params.feature_fraction, "seed": params.seed,
               "nthread": params.threads, "lambdarank_pair_method": "topk",
               "lambdarank_num_pair_per_sample": 20, **params.extra}
        booster = xgb.train(cfg, dtrain, num_boost_round=params.rounds, evals=evals,
                            early_stopping_rounds=30 if has_val else None, verbose_eval=False)
        best = int(getattr(booster, "best_iteration", params.rounds - 1)) + 1
        return cls(params, booster, features, best)

    @property
    def n_trees(self) -> int:
        """Boosting rounds that `predict` uses."""
        if self.best_rounds:
            return int(self.best_rounds)
        if self.params.backend == "lightgbm":
            return int(self.booster.current_iteration())
        return int(self.booster.num_boosted_rounds())

    def predict(self, x: np.ndarray, start: int = 0, count: int | None = None) -> np.ndarray:
        """Scores of rows `x`; `start` / `count` sum only those boosting rounds (a cascade:
        a few rounds for every candidate, the rest for the best; the parts add up to the
        whole, up to a constant per call)."""
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        end = self.n_trees if count is None else min(self.n_trees, start + count)
        if self.params.backend == "lightgbm":
            # float64 in: LightGBM converts anything else first (0.1 ms of a request's 1 ms)
            out = self.booster.predict(np.ascontiguousarray(x, dtype=np.float64),
                                       start_iteration=start, num_iteration=end - start,
                                       num_threads=self.params.threads)
        else:
            xgb = _xgboost()
            out = self.booster.predict(xgb.DMatrix(x, feature_names=self.features),
                                       iteration_range=(start, end))
        return np.asarray(out, dtype=np.float32)

    def importance(self) -> dict[str, float]:
        """Gain per feature, summing to 1."""
        if self.params.backend == "lightgbm":
            gains = self.booster.feature_importance(importance_type="gain")
            raw = dict(zip(self.features, (float(g) for g in gains), strict=True))
        else:
            score = self.booster.get_score(importance_type="total_gain")
            raw = {f: float(score.get(f, 0.0)) for f in self.features}
        total = sum(raw.values()) or 1.0
        return {f: round(v / total, 4) for f, v in raw.items()}

    # ---- persistence -------------------------------------------------------------------------
    def save(self, d: Path) -> str:
        """Write the model file into directory `d`; returns its name."""
        name = MODEL_FILES[self.params.backend]
        if self.params.backend == "lightgbm":
            (d / name).write_text(self.booster.model_to_string(num_iteration=self.best_rounds))
        else:
            self.booster.save_model(str(d / name))
        return name

    @classmethod
    def load(cls, d: Path, params: RankerParams, features: list[str],
             best_rounds: int | None) -> Ranker:
        name = MODEL_FILES.get(params.backend)
        if name is None or not (d / name).exists():
            raise ArtifactError(f"{d}: ranker model file missing ({name or params.backend})")
        try:
            if params.backend == "lightgbm":
                import lightgbm as lgb

                booster: Any = lgb.Booster(model_str=(d / name).read_text())
            else:
                xgb = _xgboost()
                booster = xgb.Booster()
                booster.load_model(str(d / name))
        except Exception as exc:  # the libraries raise their own error types
            raise ArtifactError(f"{d / name}: unreadable ranker model ({exc})") from exc
        if params.backend == "lightgbm":
            names = list(booster.feature_name())
            if names != features:
                raise ArtifactError(f"{d}: the model's features {names} differ from the "
                                    f"manifest's {features}")
            best_rounds = None  # the saved model holds exactly the kept rounds
        return cls(params, booster, features, best_rounds)
