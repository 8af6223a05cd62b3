"""Writes the MLflow stores the reader's tests read: both of MLflow's own stores, by MLflow.

    python -m venv v && v/bin/pip install "mlflow-skinny==3.18.0" sqlalchemy alembic
    cd "$(mktemp -d)" && MLFLOW_ALLOW_FILE_STORE=true v/bin/python write_stores.py
    gzip -9n mlflow.db && tar -czf mlruns.tar.gz mlruns     # then copy both here

The committed ``mlflow.db.gz`` (SQLite, the default store since MLflow 3.7) and
``mlruns.tar.gz`` (the older file store) were written by mlflow-skinny 3.18.0 this way,
so the tests need no MLflow. Experiment "demo": runs ``base-<seed>`` (lr 0.001) and
``high-<seed>`` (lr 0.002, a loss 1.2x as high) for seeds 0-3, and ``base-0-again``, a
rerun of ``base-0``. Each logs ``loss`` and ``lr`` for steps 0-9 and ``eval_loss`` at
step 10, and a secret-looking parameter that must never reach a report.
"""

from __future__ import annotations

import random

import mlflow


def log_run(name: str, lr: float, seed: int, scale: float) -> None:
    rng = random.Random(seed)
    with mlflow.start_run(run_name=name):
        mlflow.log_params({"lr": lr, "batch_size": 32, "seed": seed, "api_token": "s3cret-value"})
        loss = 0.0
        for step in range(10):
            loss = scale * 3.0 / (1 + step) ** 0.5 + rng.gauss(0, 0.01)
            mlflow.log_metric("loss", loss, step=step)
            mlflow.log_metric("lr", lr, step=step)
        mlflow.log_metric("eval_loss", loss * 1.01, step=10)


for uri in ("sqlite:///mlflow.db", "./mlruns"):
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("demo")
    for seed in range(4):
        log_run(f"base-{seed}", 0.001, seed, 1.0)
        log_run(f"high-{seed}", 0.002, seed, 1.2)
    log_run("base-0-again", 0.001, 0, 1.0)
