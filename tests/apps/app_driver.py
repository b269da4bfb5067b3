"""Drives real applications against a database, in the apps' own virtualenv (build/apps-venv).

    python app_driver.py build  <app> <workdir> <url>     schema by the app's own code, data
                                                          through its API, then ``read`` of it
    python app_driver.py mutate <app> <workdir> <url>     changes made after a backup was taken
    python app_driver.py read   <app> <workdir> <url>...  everything back through the app

The apps (MLflow, Optuna, JupyterHub) pin dependencies that may clash with Airflow's, so this
file runs in its own interpreter and imports nothing from the project. ``build`` and ``read``
print one JSON list, a reading per URL, canonical: keys sorted and every list sorted, because an
app that reads without ORDER BY may see rows in another physical order after a restore, which is
not a difference in the data.
"""

from __future__ import annotations

import datetime
import enum
import json
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Fixed clock values (milliseconds) so that the data set does not depend on when it was built.
T0 = 1_700_000_000_000


def plain(value: Any) -> Any:
    """A JSON-ready, order-independent copy of an application's entity."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, datetime.datetime | datetime.date | datetime.timedelta):
        return repr(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [plain(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if hasattr(value, "to_dictionary"):
        return plain(value.to_dictionary())
    if hasattr(value, "__dict__"):
        return {
            k.lstrip("_"): plain(v)
            for k, v in vars(value).items()
            if not callable(v) and not k.startswith("_sa_")
        }
    raise TypeError(f"cannot make {type(value).__name__} plain")


# -- MLflow: tracking store (runs its Alembic migrations on a new database) + model registry ----


def _mlflow_stores(url: str, workdir: Path) -> tuple[Any, Any]:
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as Registry
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as Tracking

    artifacts = workdir.resolve() / "mlflow-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    return Tracking(url, artifacts.as_uri()), Registry(url)


def _mlflow_trace(tracking: Any, experiment_id: str, n: int) -> None:
    """One trace (two spans, tags, a human's feedback) as MLflow's tracing logs it."""
    from mlflow.entities import TraceInfo, TraceState
    from mlflow.entities.assessment import AssessmentSource, Feedback
    from mlflow.entities.span import create_mlflow_span
    from mlflow.entities.trace_location import TraceLocation
    from mlflow.tracing.utils import generate_mlflow_trace_id_from_otel_trace_id
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("zenmigrate-tests")
    start = T0 + 10_000 * n
    root = tracer.start_span("answer", start_time=start * 1_000_000)
    trace_id = generate_mlflow_trace_id_from_otel_trace_id(root.get_span_context().trace_id)
    info = TraceInfo(
        trace_id=trace_id,
        trace_location=TraceLocation.from_experiment_id(experiment_id),
        request_time=start,
        state=TraceState.OK if n % 2 else TraceState.ERROR,
        request_preview='{"question": "ça va ?"}',
        response_preview="oui",
        execution_duration=5,
        trace_metadata={"mlflow.user": "tester"},
        tags={"n": str(n)},
    )
    tracking.start_trace(info)
    span = create_mlflow_span(root, trace_id, "CHAIN")
    span.set_inputs({"question": "ça va ?", "n": n})
    span.set_outputs({"answer": ["oui", 1.5, None]})
    child = create_mlflow_span(
        tracer.start_span(
            "llm", context=trace.set_span_in_context(root), start_time=(start + 1) * 1_000_000
        ),
        trace_id,
        "LLM",
    )
    child.set_attribute("model", f"m{n}")
    child.end(end_time_ns=(start + 3) * 1_000_000)
    span.end(end_time_ns=(start + 5) * 1_000_000)
    tracking.log_spans(experiment_id, [span, child])
    tracking.set_trace_tag(trace_id, "reviewed", "yes")
    tracking.create_assessment(
        Feedback(
            name="quality",
            value=0.25 * n,
            trace_id=trace_id,
            source=AssessmentSource(source_type="HUMAN", source_id="reviewer"),
            rationale="checked by hand",
        )
    )


def mlflow_build(url: str, workdir: Path) -> None:
    from mlflow.entities import (
        Dataset,
        DatasetInput,
        InputTag,
        LoggedModelParameter,
        LoggedModelTag,
        Metric,
        Param,
        RunStatus,
        RunTag,
    )
    from mlflow.entities.model_registry import ModelVersionTag, RegisteredModelTag

    tracking, registry = _mlflow_stores(url, workdir)
    for e in range(3):
        exp = tracking.create_experiment(
            f"experiment {e} — naïve ✓",
            tags=[RunTag("team", f"t{e}"), RunTag("note", "multi\nline 'quoted' \"x\"")],
        )
        for r in range(4):
            run = tracking.create_run(
                exp, user_id=f"user{r}", start_time=T0 + 1000 * (e * 10 + r), tags=[], run_name=None
            )
            rid = run.info.run_id
            tracking.log_batch(
                rid,
                metrics=[Metric("loss", 1.0 / (s + 1) + e, T0 + s, s) for s in range(20)]
                + [Metric("acc", 0.1 * s, T0 + s, s) for s in range(10)]
                + [
                    Metric("weird", v, T0, i)
                    for i, v in enumerate([math.nan, math.inf, -math.inf, 1e308, -0.0])
                ],
                params=[
                    Param("lr", str(10**-r)),
                    Param("optimizer", "adam"),
                    Param("blob", "x" * 500),
                ],
                tags=[RunTag("mlflow.note.content", f"run {r} of {e} 😀"), RunTag("k", str(r))],
            )
            tracking.log_inputs(
                rid,
                datasets=[
                    DatasetInput(
                        Dataset(
                            f"ds{r % 2}",
                            f"digest{r % 2}",
                            "local",
                            f"/data/{r % 2}.csv",
                            schema='{"cols": ["a", "b"]}',
                            profile='{"rows": 10}',
                        ),
                        tags=[InputTag("mlflow.data.context", "training")],
                    )
                ],
            )
            model = tracking.create_logged_model(
                exp,
                name=f"model_{r}",
                source_run_id=rid,
                tags=[LoggedModelTag("stage", "dev")],
                params=[LoggedModelParameter("depth", str(r))],
            )
            if r == 3:
                tracking.delete_run(rid)
            else:
                status = RunStatus.FINISHED if r else RunStatus.FAILED
                tracking.update_run_info(rid, status, T0 + 99_000 + r, None)
            if r == 1:
                name = f"registered-{e}"
                registry.create_registered_model(
                    name, tags=[RegisteredModelTag("owner", "me")], description="déjà vu"
                )
                for v in range(2):
                    registry.create_model_version(
                        name,
                        source=model.artifact_location,
                        run_id=rid,
                        tags=[ModelVersionTag("v", str(v))],
                        description=f"version {v}",
                    )
                registry.set_registered_model_alias(name, "champion", "2")
        for n in range(2):
            _mlflow_trace(tracking, exp, 2 * e + n)
    gone = tracking.create_experiment("deleted experiment")
    tracking.delete_experiment(gone)


def mlflow_mutate(url: str, workdir: Path) -> None:
    from mlflow.entities import Metric

    tracking, registry = _mlflow_stores(url, workdir)
    exp = tracking.get_experiment_by_name("experiment 0 — naïve ✓")
    run = tracking.create_run(exp.experiment_id, "intruder", T0, [], "late run")
    tracking.log_metric(run.info.run_id, Metric("loss", 42.0, T0, 0))
    tracking.rename_experiment(exp.experiment_id, "renamed after the backup")
    registry.delete_registered_model("registered-1")


def mlflow_read(url: str, workdir: Path) -> Any:
    from mlflow.entities import ViewType

    tracking, registry = _mlflow_stores(url, workdir)
    experiments = tracking.search_experiments(view_type=ViewType.ALL, max_results=1000)
    ids = [e.experiment_id for e in experiments]
    runs = tracking.search_runs(ids, None, ViewType.ALL, max_results=1000)
    histories = {
        run.info.run_id: {
            key: tracking.get_metric_history(run.info.run_id, key) for key in run.data.metrics
        }
        for run in runs
    }
    models = tracking.search_logged_models(ids, max_results=1000)
    trace_infos, _ = tracking.search_traces(ids, max_results=1000)
    traces = [tracking.get_trace(info.trace_id) for info in trace_infos]
    registered = registry.search_registered_models(max_results=1000)
    versions = registry.search_model_versions(max_results=1000)
    return {
        "experiments": experiments,
        "runs": runs,
        "inputs": {run.info.run_id: run.inputs for run in runs},
        "histories": histories,
        "logged_models": list(models),
        "traces": [
            {"info": t.info.to_dict(), "spans": [x.to_dict() for x in t.data.spans]} for t in traces
        ],
        "registered_models": list(registered),
        "model_versions": list(versions),
        "aliases": {
            m.name: registry.get_model_version_by_alias(m.name, "champion") for m in registered
        },
    }


# -- Optuna: RDB storage ------------------------------------------------------------------------


def optuna_build(url: str, workdir: Path) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.RDBStorage(url)

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", -10, 10)
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        layers = trial.suggest_int("layers", 1, 8)
        kind = trial.suggest_categorical("kind", ["relu", "tanh", None, 1.5])
        trial.set_user_attr("note", f"trial {trial.number} ✓")
        trial.set_user_attr("nested", {"a": [1, 2.5, None], "b": "ü"})
        for step in range(5):
            trial.report((x - 2) ** 2 / (step + 1), step)
        if trial.number == 3:
            raise optuna.TrialPruned()
        if trial.number == 5:
            raise ValueError("a failing trial")
        return (x - 2) ** 2 + lr * layers + (0 if kind == "relu" else 1)

    single = optuna.create_study(
        storage=storage,
        study_name="single objective «é»",
        sampler=optuna.samplers.TPESampler(seed=7),
    )
    single.set_user_attr("owner", "zenmigrate")
    single.set_metric_names(["loss"])
    single.optimize(objective, n_trials=12, catch=(ValueError,))

    multi = optuna.create_study(
        storage=storage,
        study_name="multi objective",
        directions=["minimize", "maximize"],
        sampler=optuna.samplers.RandomSampler(seed=3),
    )
    multi.optimize(
        lambda t: (t.suggest_float("a", 0, 1), t.suggest_int("b", 0, 100, step=5)), n_trials=8
    )
    waiting = optuna.create_study(storage=storage, study_name="enqueued")
    waiting.enqueue_trial({"x": 1.25}, user_attrs={"why": "queued"})
    running = waiting.ask()
    running.set_user_attr("state", "left running")


def optuna_mutate(url: str, workdir: Path) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.RDBStorage(url)
    study = optuna.load_study(study_name="single objective «é»", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", -10, 10) ** 2, n_trials=3)
    optuna.delete_study(study_name="multi objective", storage=storage)


def optuna_read(url: str, workdir: Path) -> Any:
    import optuna

    storage = optuna.storages.RDBStorage(url)
    out = {}
    for study in storage.get_all_studies():
        trials = storage.get_all_trials(study._study_id, deepcopy=False)
        out[study.study_name] = {"study": study, "trials": trials}
    return out


# -- JupyterHub: its ORM (users, groups, roles, tokens, servers, shares, OAuth clients) ------


def _hub(url: str) -> Any:
    from jupyterhub import orm

    return orm, orm.new_session_factory(url)()


def jupyterhub_build(url: str, workdir: Path) -> None:
    orm, db = _hub(url)
    users = [orm.User(name=f"user{i}-ü", admin=i == 0) for i in range(6)]
    db.add_all(users)
    group = orm.Group(name="researchers", users=users[1:4], properties={"quota": 10, "tags": ["a"]})
    db.add(group)
    db.add(
        orm.Role(
            name="auditor",
            description="reads «everything»",
            scopes=["read:users"],
            users=users[4:],
            groups=[group],
        )
    )
    service = orm.Service(name="announcer", admin=False)
    db.add(service)
    # The hub registers itself as an OAuth client at start; tokens default to that client.
    db.add(orm.OAuthClient(identifier="jupyterhub", secret="", redirect_uri="/hub/oauth"))
    db.add(
        orm.OAuthClient(
            identifier="jupyterhub-user-x", secret="s3", redirect_uri="/cb", description="a client"
        )
    )
    db.commit()
    for i, user in enumerate(users):
        server = orm.Server(ip="127.0.0.1", port=8000 + i, base_url=f"/user/{user.name}/")
        db.add(
            orm.Spawner(
                user=user,
                server=server,
                name="" if i % 2 else f"named{i}",
                state={"pid": 1000 + i, "env": {"A": "b"}},
                user_options={"image": "lab", "cpus": i},
            )
        )
        user.encrypted_auth_state = bytes(range(i, 256, 7))
        user.new_api_token(note=f"token {i}", expires_in=3600 * (i + 1))
    service.new_api_token(note="service token")
    db.commit()
    owner = users[1]
    spawner = owner.orm_spawners[next(iter(owner.orm_spawners))]
    db.add(orm.Share(owner=owner, spawner=spawner, user=users[2], scopes=["access:servers"]))
    db.commit()


def jupyterhub_mutate(url: str, workdir: Path) -> None:
    orm, db = _hub(url)
    db.add(orm.User(name="arrived-later"))
    db.delete(db.query(orm.Group).filter_by(name="researchers").one())
    db.commit()


def jupyterhub_read(url: str, workdir: Path) -> Any:
    from sqlalchemy import inspect

    orm, db = _hub(url)
    out: dict[str, Any] = {}
    for mapper in orm.Base.registry.mappers:
        cls = mapper.class_
        rows = db.query(cls).order_by(*mapper.primary_key).all()
        out[cls.__name__] = [
            {attr.key: getattr(row, attr.key) for attr in inspect(cls).column_attrs} for row in rows
        ]
    out["memberships"] = {
        u.name: {
            "groups": [g.name for g in u.groups],
            "roles": [r.name for r in u.roles],
            "servers": list(u.orm_spawners),
        }
        for u in db.query(orm.User)
    }
    return out


APPS: dict[str, dict[str, Callable[[str, Path], Any]]] = {
    "mlflow": {"build": mlflow_build, "mutate": mlflow_mutate, "read": mlflow_read},
    "optuna": {"build": optuna_build, "mutate": optuna_mutate, "read": optuna_read},
    "jupyterhub": {"build": jupyterhub_build, "mutate": jupyterhub_mutate, "read": jupyterhub_read},
}


def main(argv: list[str]) -> None:
    command, app, workdir, *urls = argv
    logging.disable(logging.WARNING)
    steps = APPS[app]
    if command in ("build", "mutate"):
        (url,) = urls
        steps[command](url, Path(workdir))
        if command == "mutate":
            return
    readings = [plain(steps["read"](url, Path(workdir))) for url in urls]
    sys.stdout.write(json.dumps(readings, sort_keys=True, ensure_ascii=False, allow_nan=False))


if __name__ == "__main__":
    main(sys.argv[1:])
