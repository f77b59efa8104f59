"""Table sources: rows of numerical and categorical features with a target, for T-JEPA.

A table is a CSV, Parquet or ARFF file (read by pandas / scipy) plus a *schema* naming each
column's role: ``numerical``, ``categorical``, ``target`` (exactly one) or ``ignore``. The schema
is a JSON object ``{"column": "role", ...}`` in ``<file stem>.schema.json`` beside the file, or
in the file ``data.schema`` names, or inline as ``"age:numerical,workclass:categorical,..."``.
Shipped tables need no files: ``diamonds`` (plotnine's copy, 53,940 rows; price regression
from 6 numerical and 3 categorical columns) and scikit-learn's bundled ``breast_cancer``
(569 x 30, 2 classes), ``wine`` (178 x 13, 3 classes) and ``digits`` (1,797 8x8 images as 64
numerical columns, 10 classes).

Preparation, fitted on the training split only (rows split once, stratified for
classification, by ``data.test_fraction`` and ``data.split_seed``):

* numerical columns: MinMax-scaled to [0, 1] on the training rows (test rows may fall outside);
* categorical columns: label codes 1..K of the training rows' categories; 0 is kept for a
  category never seen in training (missing values are a category of their own, "<missing>");
* target: class indices (classification) or standardized by the training rows' mean and std
  (regression, so RMSE is in units of the target's std, as T-JEPA reports California).

Each example is ``{"numerical": float32 (n_num,), "categorical": int32 (n_cat,), "label"}``.
Bad input (a column missing from the schema or the file, an unparseable or missing number, no
target) raises :class:`DataError` naming the column, the row and the fix.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import io
import json
import os
from pathlib import Path

import numpy as np

from data_pipelines.errors import DataError

ROLES = ("numerical", "categorical", "target", "ignore")
TASKS = ("auto", "classification", "regression")
MISSING = "<missing>"
SHIPPED = ("diamonds", "breast_cancer", "wine", "digits")
READERS = (".csv", ".csv.gz", ".parquet", ".pq", ".arff", ".arff.gz")


@dataclasses.dataclass(frozen=True)
class PreparedTable:
    """Both splits of a prepared table and what the model needs to know about its columns."""

    numerical_names: tuple[str, ...]
    categorical_names: tuple[str, ...]
    cardinalities: tuple[int, ...]   # per categorical column, code 0 (unseen) included
    task: str                        # classification | regression
    classes: tuple[str, ...]         # class names (classification)
    splits: dict                     # split -> (numerical, categorical, label) arrays

    @property
    def n_features(self) -> int:
        return len(self.numerical_names) + len(self.categorical_names)


class TableSource:
    """Random access to one split's rows."""

    def __init__(self, table: PreparedTable, split: str):
        if split not in table.splits:
            raise DataError(f"table split {split!r} does not exist; use one of {sorted(table.splits)}")
        self.table = table
        self.numerical, self.categorical, self.label = table.splits[split]

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int) -> dict:
        return {"numerical": self.numerical[i], "categorical": self.categorical[i],
                "label": self.label[i]}


def table_source(data_config, split: str) -> TableSource:
    """The `split` ('train' | 'test') of the table ``data.table`` names (see module doc)."""
    return TableSource(prepared_table(data_config), split)


def prepared_table(data_config) -> PreparedTable:
    d = data_config
    if d.task not in TASKS:
        raise DataError(f"data.task={d.task!r}: use one of {', '.join(TASKS)}")
    if not 0 < d.test_fraction < 1:
        raise DataError(f"data.test_fraction={d.test_fraction} must be between 0 and 1")
    stamp = os.path.getmtime(d.table) if os.path.exists(d.table) else 0.0
    return _prepare_cached(d.table, d.schema, d.task, float(d.test_fraction), int(d.split_seed),
                           stamp)


@functools.lru_cache(maxsize=4)
def _prepare_cached(table: str, schema: str, task: str, test_fraction: float, seed: int,
                    _stamp: float) -> PreparedTable:
    frame, roles, shipped_task = load_table(table, schema)
    if task == "auto":
        task = shipped_task
    return prepare(frame, roles, task=task, test_fraction=test_fraction, seed=seed, name=table)


# -- reading ---------------------------------------------------------------------------------
def load_table(table: str, schema: str = ""):
    """(DataFrame, schema dict, task) of a shipped table name or a table file (task 'auto')."""
    if table in SHIPPED:
        return _shipped(table)
    path = Path(table)
    if not path.exists():
        raise DataError(f"data.table={table!r} is neither a shipped table ({', '.join(SHIPPED)}) "
                        f"nor an existing file; give a CSV / Parquet / ARFF path")
    frame = read_table(path)
    return frame, read_schema(schema, path, frame), "auto"


def read_table(path: str | os.PathLike):
    """A CSV, Parquet or ARFF (optionally gzipped) file as a DataFrame."""
    import pandas as pd

    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith((".csv", ".csv.gz")):
            return pd.read_csv(path)
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if name.endswith((".arff", ".arff.gz")):
            return _read_arff(path)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read table file {path}: {e}") from e
    raise DataError(f"table file {path}: unknown format; use one of {', '.join(READERS)}")


def _read_arff(path: Path):
    """ARFF (OpenML's format, e.g. Helena and Jannis) through scipy; nominal values are str."""
    import pandas as pd
    from scipy.io import arff

    raw = gzip.decompress(path.read_bytes()) if path.name.lower().endswith(".gz") else path.read_bytes()
    data, _ = arff.loadarff(io.StringIO(raw.decode("utf-8")))
    frame = pd.DataFrame(data)
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].str.decode("utf-8").replace("?", None)
    return frame


def read_schema(schema: str, path: Path, frame) -> dict[str, str]:
    """The schema of the table at `path`: from `schema` (a JSON file or inline
    "col:role,...") or from ``<stem>.schema.json`` beside the file."""
    if not schema:
        stem = path.name.split(".")[0]
        sidecar = path.with_name(stem + ".schema.json")
        if not sidecar.exists():
            raise DataError(f"no schema for {path}: write {sidecar} (or pass --config.data.schema"
                            f"=FILE), e.g. (guessed from the data; check it):\n"
                            f"{json.dumps(guess_schema(frame), indent=1)}")
        schema = str(sidecar)
    if schema.endswith(".json"):
        try:
            roles = json.loads(Path(schema).read_text())
        except FileNotFoundError as e:
            raise DataError(f"schema file {schema} does not exist") from e
        except json.JSONDecodeError as e:
            raise DataError(f"schema file {schema} is not valid JSON: {e}") from e
    else:
        pairs = [p.rpartition(":") for p in schema.split(",") if p.strip()]
        roles = {name.strip(): role.strip() for name, _, role in pairs}
    if not isinstance(roles, dict) or not all(isinstance(v, str) for v in roles.values()):
        raise DataError(f"schema {schema}: expected an object {{\"column\": \"role\"}}")
    return roles


def guess_schema(frame) -> dict[str, str]:
    """A starting schema: numbers numerical, the rest categorical, the last column the target."""
    import pandas as pd

    roles = {str(c): "numerical" if pd.api.types.is_numeric_dtype(frame[c]) else "categorical"
             for c in frame.columns}
    roles[str(frame.columns[-1])] = "target"
    return roles


def _shipped(name: str):
    if name == "diamonds":
        import importlib.util

        import pandas as pd

        spec = importlib.util.find_spec("plotnine")
        if spec is None:
            raise DataError("the diamonds table ships with plotnine: pip install plotnine "
                            "(or pip install -e .[tables])")
        frame = pd.read_csv(Path(spec.submodule_search_locations[0]) / "data" / "diamonds.csv")
        roles = {c: "numerical" for c in ("carat", "depth", "table", "x", "y", "z")}
        roles.update(cut="categorical", color="categorical", clarity="categorical", price="target")
        return frame, roles, "regression"
    try:
        from sklearn import datasets
    except ImportError as e:
        raise DataError(f"the {name} table ships with scikit-learn: pip install scikit-learn "
                        "(or pip install -e .[tables])") from e
    frame = getattr(datasets, f"load_{name}")(as_frame=True).frame
    roles = {c: "numerical" for c in frame.columns}
    roles["target"] = "target"
    return frame, roles, "classification"


# -- preparing -------------------------------------------------------------------------------
def prepare(frame, roles: dict[str, str], *, task: str = "auto", test_fraction: float = 0.2,
            seed: int = 0, name: str = "table") -> PreparedTable:
    """Check the schema against the table, split it, fit the encoders on the training rows."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler, OrdinalEncoder

    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    _check_schema(columns, roles, name)
    numerical = [c for c in columns if roles[c] == "numerical"]
    categorical = [c for c in columns if roles[c] == "categorical"]
    target = next(c for c in columns if roles[c] == "target")
    if not numerical and not categorical:
        raise DataError(f"{name}: the schema names no numerical or categorical column")
    x_num = np.stack([_numbers(frame[c], c, name) for c in numerical], 1) if numerical \
        else np.zeros((len(frame), 0))
    x_cat = frame[categorical].astype(object).where(frame[categorical].notna(), MISSING) \
        .astype(str).to_numpy()
    y, task, classes = _target(frame[target], target, task, name)

    stratify = y if task == "classification" and np.bincount(y).min() >= 2 else None
    rows = np.arange(len(frame))
    try:
        train, test = train_test_split(rows, test_size=test_fraction, random_state=seed,
                                       stratify=stratify)
    except ValueError as e:
        raise DataError(f"{name}: cannot split {len(rows)} rows with data.test_fraction="
                        f"{test_fraction}: {e}") from e
    scaler = MinMaxScaler().fit(x_num[train]) if numerical else None
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                             dtype=np.int64).fit(x_cat[train]) if categorical else None
    if task == "regression":
        mean, std = y[train].mean(), y[train].std()
        y = (y - mean) / (std if std > 0 else 1.0)

    def split(idx):
        num = scaler.transform(x_num[idx]) if scaler else x_num[idx]
        cat = encoder.transform(x_cat[idx]) + 1 if encoder else np.zeros((len(idx), 0))
        label = y[idx].astype(np.int32 if task == "classification" else np.float32)
        return num.astype(np.float32), cat.astype(np.int32), label

    return PreparedTable(
        numerical_names=tuple(numerical), categorical_names=tuple(categorical),
        cardinalities=tuple(len(c) + 1 for c in encoder.categories_) if encoder else (),
        task=task, classes=classes, splits={"train": split(train), "test": split(test)})


def _check_schema(columns: list[str], roles: dict[str, str], name: str) -> None:
    unknown = sorted(c for c in columns if c not in roles)
    if unknown:
        raise DataError(f"{name}: column(s) {unknown} are not in the schema; give each a role "
                        f"({', '.join(ROLES)}; 'ignore' drops it)")
    absent = sorted(c for c in roles if c not in columns)
    if absent:
        raise DataError(f"{name}: the schema names column(s) {absent} that the table does not "
                        f"have; its columns: {columns}")
    bad = {c: r for c, r in roles.items() if r not in ROLES}
    if bad:
        raise DataError(f"{name}: unknown role(s) {bad} in the schema; use one of {', '.join(ROLES)}")
    targets = [c for c in columns if roles[c] == "target"]
    if len(targets) != 1:
        raise DataError(f"{name}: the schema must name exactly one target column, found {targets}")


def _numbers(column, name: str, table: str) -> np.ndarray:
    """A numerical column as float64; one clear error for text or missing values."""
    import pandas as pd

    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() & column.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{table}: numerical column {name!r} has {int(bad.sum())} value(s) that "
                        f"are not numbers, first {column.iloc[row]!r} in data row {row}; fix them "
                        "or declare the column categorical in the schema")
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataError(f"{table}: numerical column {name!r} has {int(values.isna().sum())} "
                        f"missing value(s), first in data row {row}; fill or drop those rows, or "
                        f"declare the column categorical (missing becomes its own category)")
    return values.to_numpy(np.float64)


def _target(column, name: str, task: str, table: str):
    """(values, task, class names): class indices for classification, floats for regression."""
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils.multiclass import type_of_target

    if column.isna().any():
        row = int(np.flatnonzero(column.isna().to_numpy())[0])
        raise DataError(f"{table}: target column {name!r} has {int(column.isna().sum())} missing "
                        f"value(s), first in data row {row}; drop those rows")
    if task == "auto":
        kind = type_of_target(column.to_numpy())
        task = "regression" if kind.startswith("continuous") else "classification"
    if task == "regression":
        return _numbers(column, name, table), task, ()
    encoder = LabelEncoder().fit(column.astype(str))
    if len(encoder.classes_) < 2:
        raise DataError(f"{table}: target column {name!r} has a single class; classification "
                        "needs two or more (or set --config.data.task=regression)")
    return encoder.transform(column.astype(str)), task, tuple(encoder.classes_)
