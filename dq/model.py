"""The model stage: "will this order include food?", learnt only from audited data.

::

    published warehouse ──(sha256 = the fingerprint its publishing run audited?)──┐
    order_features ── stratified split ── Pipeline.fit ── hold-out metrics ───────┤
    warehouse/model/candidate/{model.skops, metrics.json, card.json, gate.json} ◄─┘
    gate: F1 ≥ f1_min, F1 > always-"food" baseline, F1 ≥ production F1 − max_f1_drop

Training never reads a build: only the published file, and only when its bytes
are the ones the last publishing run audited (its publish step's fingerprint).
A build that failed a gate is never published, so no model can come from it.
The bytes are hashed and read from one copy in memory, so what is checked is
what is read.

What to learn and the gate's thresholds live in ``model/config.yml``; the
release helper (``dq.release``) promotes a passing candidate into
``production/releases/<id>/model/`` and points ``production/current`` at it;
:func:`predict` scores the published orders with that production model into
``warehouse/predictions/``, never into the published warehouse.
"""

# pandas, scikit-learn and skops take seconds to import (~10 s on a cold CI
# machine): only the functions that train, load or score import them, so that
# load_candidate and gate (the deploy step) and a DAG file that imports this
# module stay cheap.
# pylint: disable=import-outside-toplevel

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from dq.config import Settings
from dq.errors import BadInput, EnvironmentFailure, GateFailed
from dq.lock import file_lock
from dq.record import last_published, now_iso

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

#: The classifiers ``estimator.class`` may name, and where scikit-learn keeps them.
#: A short list on purpose: a model file may only hold types we trust to load.
ESTIMATORS = {
    "RandomForestClassifier": "sklearn.ensemble",
    "ExtraTreesClassifier": "sklearn.ensemble",
    "GradientBoostingClassifier": "sklearn.ensemble",
    "DecisionTreeClassifier": "sklearn.tree",
    "LogisticRegression": "sklearn.linear_model",
    "DummyClassifier": "sklearn.dummy",
}

#: What skops does not trust by default that a pipeline of ESTIMATORS holds
#: (tests/test_model.py proves the list is complete). Anything else in a model
#: file is refused: loading it could run code.
TRUSTED_TYPES = ("numpy.dtype", "sklearn.tree._tree.Tree")

CANDIDATE = "candidate"
MODEL_FILE = "model.skops"
PREDICTIONS = "order_food_predictions"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ------------------------------------------------------------------ configuration


@dataclasses.dataclass(frozen=True)
class ModelConfig:  # pylint: disable=too-many-instance-attributes
    """``model/config.yml``, checked (see the file for what each key means)."""

    path: Path
    sha256: str
    question: str
    table: str
    key: str
    label: str
    one_hot: tuple[str, ...]
    impute: tuple[str, ...]
    passthrough: tuple[str, ...]
    estimator: str
    params: dict
    random_state: int
    test_size: float
    f1_min: float
    max_f1_drop: float

    @property
    def features(self) -> list[str]:
        """Every feature column, in the order the model sees them."""
        return [*self.one_hot, *self.impute, *self.passthrough]


def load_config(path: Path) -> ModelConfig:
    """Read and check the model configuration; :class:`BadInput` names what is wrong."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        data = yaml.safe_load(raw)
    except FileNotFoundError:
        raise BadInput(f"no model configuration at {path}") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a mapping of settings")
    try:
        features, estimator, gate_ = data["features"], data["estimator"], data["gate"]
        config = ModelConfig(
            path=path,
            sha256=hashlib.sha256(raw).hexdigest(),
            question=str(data["question"]),
            table=_name(data["table"], "table"),
            key=_name(data["key"], "key"),
            label=_name(data["label"], "label"),
            one_hot=_names(features.get("one_hot"), "features.one_hot"),
            impute=_names(features.get("impute"), "features.impute"),
            passthrough=_names(features.get("passthrough"), "features.passthrough"),
            estimator=str(estimator["class"]),
            params=dict(estimator.get("params") or {}),
            random_state=int(data["random_state"]),
            test_size=float(data["test_size"]),
            f1_min=float(gate_["f1_min"]),
            max_f1_drop=float(gate_["max_f1_drop"]),
        )
    except KeyError as exc:
        raise BadInput(f"{path}: missing setting {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise BadInput(f"{path}: {exc}") from None
    problems = []
    if not config.features:
        problems.append("no features")
    if len(set(config.features)) != len(config.features):
        problems.append("a feature is listed twice")
    leaks = {config.label, config.key} & set(config.features)
    if leaks:
        problems.append(f"{', '.join(sorted(leaks))} cannot be a feature (the label or the key)")
    if config.estimator not in ESTIMATORS:
        problems.append(
            f"estimator {config.estimator!r} is not one of {', '.join(sorted(ESTIMATORS))}"
        )
    if not 0 < config.test_size < 1:
        problems.append(f"test_size {config.test_size} is not between 0 and 1")
    if not 0 <= config.f1_min <= 1 or not 0 <= config.max_f1_drop <= 1:
        problems.append("gate.f1_min and gate.max_f1_drop must be between 0 and 1")
    if problems:
        raise BadInput(f"{path}: " + "; ".join(problems))
    return config


def _name(value, what: str) -> str:
    """A table or column name, safe to quote into SQL."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a plain table or column name")
    return value


def _names(values, what: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if not isinstance(values, list):
        raise ValueError(f"{what} must be a list of column names")
    return tuple(_name(v, what) for v in values)


# ------------------------------------------------------------------ audited data


@dataclasses.dataclass(frozen=True)
class AuditedData:
    """A table of the published warehouse, read from bytes a published run audited."""

    run_id: str
    sha256: str
    frame: pd.DataFrame


def read_published(settings: Settings, table: str, key: str) -> AuditedData:
    """``table`` of the published warehouse, sorted by ``key``, if and only if
    the file is exactly what the last publishing run audited.

    Raises :class:`BadInput` when nothing was published yet (or the table is
    missing) and :class:`GateFailed` when the file's SHA-256 is not the
    fingerprint that run recorded (changed by hand, restored from elsewhere).
    """
    run = last_published(settings)
    if settings.target != "sqlite" or (run is not None and run.settings.target != "sqlite"):
        # A release carries the warehouse file it was trained on (dq.release).
        raise BadInput(
            "the model stage trains on the published SQLite warehouse, which a release"
            " carries as a file; it does not read a PostgreSQL or Spark target yet"
            " (run it with DQ_TARGET=sqlite)"
        )
    if run is None:
        raise BadInput(
            f"no run has published the warehouse (no run record in {settings.runs_dir} with"
            " a passed publish step): run `python -m dq run` first"
        )
    expected = run.step("publish").detail["fingerprint"]
    try:
        data = settings.published_db.read_bytes()
    except FileNotFoundError:
        raise BadInput(
            f"no published warehouse at {settings.published_db} (run {run.run_id} published one)"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise GateFailed(
            f"{settings.published_db} is not what run {run.run_id} audited and published"
            f" (sha256 {digest[:12]}…, audited {expected[:12]}…): refusing to use it."
            " Publish it again with `python -m dq run`."
        )
    import pandas as pd

    # The very bytes just hashed, in memory: nothing can swap the file in between.
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        try:
            conn.deserialize(data)
            frame = pd.read_sql_query(f'select * from "{table}" order by "{key}"', conn)
        except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
            raise BadInput(
                f"cannot read {table} from the published warehouse (run {run.run_id}): {exc}"
            ) from None
    return AuditedData(run_id=run.run_id, sha256=digest, frame=frame)


# ------------------------------------------------------------------ training


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A trained model in its folder, with its hold-out metrics, card and verdict."""

    folder: Path
    metrics: dict
    card: dict
    passed: bool = False
    reasons: tuple[str, ...] = ()
    #: the F1 of the model in production when the gate ran (None: there was none)
    production_f1: float | None = None

    @property
    def model_path(self) -> Path:
        """The model file (skops), what deploy promotes with the JSON files."""
        return self.folder / MODEL_FILE


def build_pipeline(config: ModelConfig) -> Pipeline:
    """Prepare the features as the configuration says, then the estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    module = importlib.import_module(ESTIMATORS[config.estimator])
    estimator_class = getattr(module, config.estimator)
    params = dict(config.params)
    if "random_state" in estimator_class().get_params():
        params.setdefault("random_state", config.random_state)
    try:
        estimator = estimator_class(**params)
    except TypeError as exc:
        raise BadInput(f"{config.path}: estimator.params: {exc}") from None
    steps = []
    if config.one_hot:
        steps.append(("one_hot", OneHotEncoder(handle_unknown="ignore"), list(config.one_hot)))
    if config.impute:
        # Null means "no history yet": fill with 0 and say so in a flag column.
        imputer = SimpleImputer(
            strategy="constant", fill_value=0.0, add_indicator=True, keep_empty_features=True
        )
        steps.append(("impute", imputer, list(config.impute)))
    if config.passthrough:
        steps.append(("passthrough", "passthrough", list(config.passthrough)))
    return Pipeline(
        [("features", ColumnTransformer(steps, remainder="drop")), ("estimator", estimator)]
    )


def train(settings: Settings, config_path: Path | None = None) -> Candidate:
    """Fit on a stratified split of the audited ``order_features``, measure on the
    hold-out, and write the candidate into ``warehouse/model/candidate/``.

    The candidate's ``gate.json`` says "not gated yet" until :func:`run_stage`
    writes the verdict: a candidate nobody gated is never deployable.
    """
    config = load_config(config_path or settings.model_config)
    data = read_published(settings, config.table, config.key)
    x_train, x_test, y_train, y_test = _split(config, data.frame)
    pipeline = build_pipeline(config)
    try:
        pipeline.fit(x_train, y_train)
    except ValueError as exc:  # sklearn's InvalidParameterError is one
        raise BadInput(f"{config.path}: cannot fit {config.estimator}: {exc}") from None
    metrics = _metrics(y_test, pipeline.predict(x_test))
    metrics.update(
        rows=len(data.frame),
        train_rows=len(x_train),
        test_rows=len(x_test),
        positive_share=float(data.frame[config.label].mean()),
    )
    card = _card(settings, config, data, metrics, pipeline)
    folder = _write_candidate(settings, pipeline, metrics, card)
    return Candidate(folder=folder, metrics=metrics, card=json.loads(_json(card)))


def _split(config: ModelConfig, frame: pd.DataFrame) -> list:
    """``x_train, x_test, y_train, y_test``: the hold-out keeps the label's share."""
    from sklearn.model_selection import train_test_split

    missing = [c for c in (config.key, config.label, *config.features) if c not in frame]
    if missing:
        raise BadInput(f"{config.table} has no column {', '.join(missing)} ({config.path})")
    labels = frame[config.label]
    counts = labels.value_counts(dropna=False).to_dict()
    if set(counts) - {0, 1} or min(counts.values(), default=0) < 2 or len(counts) < 2:
        raise GateFailed(
            f"cannot train on {config.table}: {config.label} must be 0 or 1, each at least"
            f" twice (found {counts})"
        )
    return train_test_split(
        frame[config.features],
        labels.astype(int),
        test_size=config.test_size,
        stratify=labels,
        random_state=config.random_state,
    )


def _metrics(truth: pd.Series, predicted: np.ndarray) -> dict:
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    always_food = np.ones_like(truth)
    return {
        "f1": float(f1_score(truth, predicted, zero_division=0)),
        "precision": float(precision_score(truth, predicted, zero_division=0)),
        "recall": float(recall_score(truth, predicted, zero_division=0)),
        "accuracy": float(accuracy_score(truth, predicted)),
        "baseline_f1": float(f1_score(truth, always_food, zero_division=0)),
    }


def _card(settings, config: ModelConfig, data: AuditedData, metrics, pipeline) -> dict:
    """Everything needed to tell later what this model is and where it came from."""
    import numpy as np
    import pandas as pd
    import sklearn
    import skops

    estimator = pipeline.named_steps["estimator"]
    return {
        "question": config.question,
        "table": config.table,
        "key": config.key,
        "label": config.label,
        "features": {
            "one_hot": list(config.one_hot),
            "impute": list(config.impute),
            "passthrough": list(config.passthrough),
        },
        "estimator": {"class": config.estimator, "params": _plain(estimator.get_params())},
        "random_state": config.random_state,
        "test_size": config.test_size,
        "gate": {"f1_min": config.f1_min, "max_f1_drop": config.max_f1_drop},
        "metrics": metrics,
        "data": {
            "run_id": data.run_id,
            "warehouse_sha256": data.sha256,
            "warehouse": str(settings.published_db),
        },
        "code": _git(settings.root),
        "config": {"path": _relative(config.path, settings.root), "sha256": config.sha256},
        "versions": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "skops": skops.__version__,
            "pandas": pd.__version__,
            "numpy": np.__version__,
        },
        "trained_at": now_iso(),
    }


def _plain(params: dict) -> dict:
    """Hyperparameters as JSON can hold them (an object becomes its repr)."""
    return {
        k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)
        for k, v in sorted(params.items())
    }


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def _git(root: Path) -> dict:
    """The commit the code was at (``unknown`` outside a git checkout)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {"git_commit": "unknown"}
    return {"git_commit": commit, "git_dirty": bool(git("status", "--porcelain"))}


def _json(data) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _write_json(path: Path, data) -> None:
    """Through a temp file and ``os.replace``: readers see the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(_json(data), encoding="utf-8")
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _write_candidate(settings: Settings, pipeline: Pipeline, metrics: dict, card: dict) -> Path:
    """Write every file into a temp folder, then rename it to ``candidate/``."""
    import skops.io as sio

    settings.model_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=settings.model_dir, prefix=f".{CANDIDATE}-"))
    try:
        tmp.chmod(0o755)
        sio.dump(pipeline, tmp / MODEL_FILE)
        card["model_sha256"] = _sha256(tmp / MODEL_FILE)
        _write_json(tmp / "metrics.json", metrics)
        _write_json(tmp / "card.json", card)
        _write_json(tmp / "gate.json", {"passed": False, "reasons": ["not gated yet"]})
        return _swap_in(tmp, settings.model_dir / CANDIDATE)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(new: Path, final: Path) -> Path:
    """Replace the folder ``final`` with ``new``; never leaves a half-written one."""
    old = final.with_name(f".{final.name}-old-{os.getpid()}")
    if final.exists():
        os.rename(final, old)
    os.rename(new, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _discard(folder: Path) -> None:
    """Remove a candidate folder (first renamed, so nobody reads half of it)."""
    if folder.exists():
        old = folder.with_name(f".{folder.name}-old-{os.getpid()}")
        os.rename(folder, old)
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------ the gate


def production_metrics(settings: Settings) -> dict | None:
    """Hold-out metrics of the model in production, or None when there is none."""
    path = settings.production / "current" / "model" / "metrics.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise EnvironmentFailure(
            f"cannot read the production model's metrics {path}: {exc}"
        ) from None


def _pair(a: float, b: float) -> tuple[str, str]:
    """Two numbers as text, with as many decimals as it takes to tell them apart
    (0.4999 < 0.5000, not 0.50 < 0.50); two decimals when they are equal."""
    for digits in (2, 3, 4):
        left, right = f"{a:.{digits}f}", f"{b:.{digits}f}"
        if left != right:
            return left, right
    return f"{a:.2f}", f"{b:.2f}"


def gate(candidate: Candidate, settings: Settings) -> list[str]:
    """Why the candidate may not be deployed, as sentences; empty when it may.

    It passes only when its F1 is at least ``f1_min``, strictly above the
    always-"food" baseline's, and at most ``max_f1_drop`` below the F1 of the
    model in production (if any). The thresholds are those in the candidate's
    card: the configuration it was trained with.
    """
    f1, baseline = candidate.metrics["f1"], candidate.metrics["baseline_f1"]
    thresholds = candidate.card["gate"]
    reasons = []
    if f1 < thresholds["f1_min"]:
        shown, limit = _pair(f1, thresholds["f1_min"])
        reasons.append(f"F1 {shown} < threshold {limit}")
    if not f1 > baseline:
        shown, other = _pair(f1, baseline)
        reasons.append(f"F1 {shown} does not beat the baseline's {other} (always 'food')")
    production = production_metrics(settings)
    if production is not None:
        floor = float(production["f1"]) - thresholds["max_f1_drop"]
        if f1 < floor - 1e-9:  # 0.62 - 0.05 is 0.5700000000000001 in floats
            shown, theirs = _pair(f1, float(production["f1"]))
            reasons.append(
                f"F1 {shown} is more than {thresholds['max_f1_drop']:g} below production's {theirs}"
            )
    return reasons


@contextlib.contextmanager
def candidate_lock(settings: Settings, holder: str) -> Iterator[None]:
    """One writer or promoter of ``warehouse/model/candidate/`` at a time."""
    settings.model_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(settings.model_dir / ".lock", holder, settings.lock_timeout):
        yield


def run_stage(settings: Settings, config_path: Path | None = None) -> Candidate:
    """The model stage: train, gate, record the verdict in ``gate.json``.

    Raises :class:`GateFailed` (exit 1) naming the reasons when the gate fails;
    the candidate stays in its folder, marked not passed, as evidence, and the
    exception carries it as ``exc.candidate``. A previous candidate is removed
    first, so a stage that fails before gating leaves none behind.
    """
    with candidate_lock(settings, "the model stage"):
        _discard(settings.model_dir / CANDIDATE)
        candidate = train(settings, config_path)
        reasons = gate(candidate, settings)
        production = production_metrics(settings)
        _write_json(
            candidate.folder / "gate.json",
            {
                "passed": not reasons,
                "reasons": reasons,
                "f1": candidate.metrics["f1"],
                "baseline_f1": candidate.metrics["baseline_f1"],
                "production_f1": production["f1"] if production else None,
                "gated_at": now_iso(),
            },
        )
    candidate = dataclasses.replace(
        candidate,
        passed=not reasons,
        reasons=tuple(reasons),
        production_f1=production["f1"] if production else None,
    )
    if reasons:
        exc = GateFailed("model gate failed: " + "; ".join(reasons))
        exc.candidate = candidate
        raise exc
    return candidate


def load_candidate(settings: Settings) -> Candidate | None:
    """The candidate the model stage left, with its verdict (None when there is none)."""
    folder = settings.model_dir / CANDIDATE
    if not (folder / "gate.json").exists():
        return None
    try:
        verdict = json.loads((folder / "gate.json").read_text(encoding="utf-8"))
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EnvironmentFailure(f"the candidate in {folder} cannot be read: {exc}") from None
    return Candidate(
        folder=folder,
        metrics=metrics,
        card=card,
        passed=verdict.get("passed") is True and (folder / MODEL_FILE).exists(),
        reasons=tuple(verdict.get("reasons", ())),
        production_f1=verdict.get("production_f1"),
    )


def describe(candidate: Candidate) -> str:
    """The candidate's numbers against the baseline, and the gate's verdict."""
    m, card = candidate.metrics, candidate.card
    lines = [
        f"Model candidate: {candidate.folder}",
        f"  {card['estimator']['class']} on {card['table']} of run {card['data']['run_id']}"
        f" ({m['rows']} rows: {m['train_rows']} to train, {m['test_rows']} held out)",
        f"  F1          {m['f1']:.3f}   (baseline, always 'food': {m['baseline_f1']:.3f})",
        f"  precision   {m['precision']:.3f}",
        f"  recall      {m['recall']:.3f}",
        f"  accuracy    {m['accuracy']:.3f}",
        f"  production  F1 {candidate.production_f1:.3f}"
        if candidate.production_f1 is not None
        else "  production  no model yet",
    ]
    if candidate.passed:
        lines.append("  Gate: PASSED")
    else:
        lines.append("  Gate: FAILED")
        lines += [f"    - {reason}" for reason in candidate.reasons]
    return "\n".join(lines)


# ------------------------------------------------------------------ production


def load_model(path: Path) -> Pipeline:
    """Load a model file, trusting only skops' defaults and :data:`TRUSTED_TYPES`.

    A file holding any other type is refused (:class:`BadInput`) before
    anything in it is built.
    """
    import skops.io as sio

    try:
        unknown = sorted(set(sio.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
    except FileNotFoundError:
        raise BadInput(f"no model file at {path}") from None
    except Exception as exc:  # a damaged zip, a file that is no skops file
        raise EnvironmentFailure(f"{path} is not a readable skops file: {exc}") from None
    if unknown:
        raise BadInput(
            f"{path} holds types this project does not trust: {', '.join(unknown)};"
            " refusing to load it"
        )
    return sio.load(path, trusted=list(TRUSTED_TYPES))


def predict(settings: Settings) -> Path:
    """Score every order of the published ``order_features`` with the production
    model; write ``warehouse/predictions/order_food_predictions.csv`` and the
    table ``order_food_predictions`` in ``warehouse/predictions/predictions.db``.

    Returns the CSV's path. :class:`BadInput` when no model is in production.
    The published warehouse is only read (it stays the file that was audited).
    """
    import pandas as pd

    current = settings.production / "current" / "model"
    if not (current / MODEL_FILE).exists():
        raise BadInput(f"no production model at {current / MODEL_FILE}: deploy a candidate first")
    release = (settings.production / "current").resolve().name
    try:
        card = json.loads((current / "card.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EnvironmentFailure(f"cannot read the production model's card: {exc}") from None
    model = load_model(current / MODEL_FILE)
    data = read_published(settings, card["table"], card["key"])
    columns = list(model.feature_names_in_)
    missing = [c for c in columns if c not in data.frame]
    if missing:
        raise BadInput(f"{card['table']} has no column {', '.join(missing)} the model needs")
    features = data.frame[columns]
    positive = list(model.classes_).index(1)
    out = pd.DataFrame(
        {
            card["key"]: data.frame[card["key"]],
            "probability": model.predict_proba(features)[:, positive].round(6),
            "predicted": model.predict(features).astype(int),
            "release_id": release,
            "model_sha256": card.get("model_sha256", "unknown"),
            "warehouse_sha256": data.sha256,
        }
    )
    folder = settings.predictions_dir
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / f"{PREDICTIONS}.csv"
    _replace(csv_path, lambda tmp: out.to_csv(tmp, index=False))
    _replace(folder / "predictions.db", lambda tmp: _to_sqlite(out, tmp))
    return csv_path


def _to_sqlite(frame: pd.DataFrame, path: Path) -> None:
    types = {"probability": "REAL", "predicted": "INTEGER"}
    with contextlib.closing(sqlite3.connect(path)) as conn:
        frame.to_sql(PREDICTIONS, conn, index=False, dtype={c: types.get(c, "TEXT") for c in frame})
        conn.commit()


def _replace(path: Path, write) -> None:
    """Write through a temp file in the same folder, then ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
