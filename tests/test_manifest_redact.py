"""Secrets in every form a config, a command line or a remote holds them stay out of the
record, and ordinary values stay in."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.manifest.env import environment
from repro.manifest.redact import REDACTED, redact, redact_argv, strip_credentials

TOKEN = "ghp_" + "a1B2c3D4" * 5  # a GitHub token's shape


def test_secret_options_on_the_command_line_keep_their_name_not_their_value() -> None:
    argv = ["train.py", "--api-token=abc", "--password", "hunter2", "--lr", "0.1", "--keyfile"]
    assert redact_argv(argv) == [
        "train.py",
        f"--api-token={REDACTED}",
        "--password",
        REDACTED,
        "--lr",
        "0.1",
        "--keyfile",
    ]


def test_a_secret_key_is_hidden_at_any_depth_of_mappings_and_lists() -> None:
    config = {
        "lr": 1,
        "db": {"secret_key": "x", "host": "h"},
        "services": [{"name": "hub", "token": "t1"}, {"name": "s3", "password": "p"}],
        "matrix": [[{"api_key": "k"}]],
        "api_tokens": ["t2", "t3"],
    }
    assert redact(config) == {
        "lr": 1,
        "db": {"secret_key": REDACTED, "host": "h"},
        "services": [{"name": "hub", "token": REDACTED}, {"name": "s3", "password": REDACTED}],
        "matrix": [[{"api_key": REDACTED}]],
        "api_tokens": REDACTED,
    }


@pytest.mark.parametrize("key", ["Authorization", "authorization", "proxy_auth", "Cookie"])
def test_an_authorization_key_is_hidden(key: str) -> None:
    assert redact({"headers": {key: "Bearer abc"}}) == {"headers": {key: REDACTED}}


@pytest.mark.parametrize("key", ["author", "authors", "authority", "monitor", "lr"])
def test_ordinary_keys_are_kept(key: str) -> None:
    assert redact({key: "Jane"}) == {key: "Jane"}


@pytest.mark.parametrize(
    "key",
    [
        "bos_token_id",
        "pad_token_id",
        "decoder_start_token_id",
        "eos_token_ids",
        "max_new_tokens",
        "num_tokens",
        "tokens_per_batch",
        "tokenizer_name",
        "num_key_value_heads",
        "model.key_dim",
        "--max-new-tokens",
    ],
)
def test_a_training_configs_token_counts_and_ids_are_kept(key: str) -> None:
    assert redact({key: 2}) == {key: 2}
    assert redact(["train.py", key, "2"]) == ["train.py", key, "2"]


@pytest.mark.parametrize(
    "key",
    [
        "hf_token",
        "access_token_file",
        "api_key_id",
        "AWS_ACCESS_KEY_ID",
        "token_secret",
        "tokenizer_auth_token",
        "hub_token_id_secret",
    ],
)
def test_a_credential_named_near_a_token_word_is_still_hidden(key: str) -> None:
    assert redact({key: "abc"}) == {key: REDACTED}


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        (f"https://user:{TOKEN}@github.com/org/x.git", "https://github.com/org/x.git"),
        (f"clone https://{TOKEN}@github.com/o/x.git now", "clone https://github.com/o/x.git now"),
        ("postgres://admin:pw@db:5432/runs", "postgres://db:5432/runs"),
        ("Authorization: Bearer abc.def", f"Authorization: Bearer {REDACTED}"),
        ("https://h/x?access_token=abc&page=2", f"https://h/x?access_token={REDACTED}&page=2"),
        ("db.password=hunter2", f"db.password={REDACTED}"),
        (f"push with {TOKEN}", f"push with {REDACTED}"),
        ("hf_" + "x" * 34, REDACTED),
        # Kept: a user name without a secret, paths, ordinary pairs.
        ("ssh://git@host/x.git", "ssh://git@host/x.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("data/train.bin", "data/train.bin"),
        ("model.d_model=128", "model.d_model=128"),
    ],
)
def test_credentials_inside_a_string_are_hidden(text: str, clean: str) -> None:
    assert redact({"value": text}) == {"value": clean}
    assert redact([text, 1]) == [clean, 1]


def test_credentials_inside_command_line_words_are_hidden() -> None:
    argv = [
        "train.py",
        "--repo",
        f"https://user:{TOKEN}@host/x.git",
        "-H",
        "Authorization: Bearer abc",
        "optimizer.api_key=k",
    ]
    assert redact_argv(argv) == [
        "train.py",
        "--repo",
        "https://host/x.git",
        "-H",
        f"Authorization: Bearer {REDACTED}",
        f"optimizer.api_key={REDACTED}",
    ]


def test_a_list_of_arguments_inside_a_config_is_read_as_a_command_line() -> None:
    config = {"launcher_args": ["--nodes", "2", "--token", "abc"]}
    assert redact(config) == {"launcher_args": ["--nodes", "2", "--token", REDACTED]}


def test_a_recorded_environment_variable_holding_a_url_loses_its_credentials() -> None:
    recorded = environment({"TORCH_HUB_URL": "https://u:pw@hub.example/x"})
    assert recorded == {"TORCH_HUB_URL": "https://hub.example/x"}


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("https://user:secret@example.com/org/repo.git", "https://example.com/org/repo.git"),
        ("https://ghp_token123@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("http://u:p@host:8080/x.git", "http://host:8080/x.git"),
        ("ssh://user:pw@host/x.git", "ssh://host/x.git"),
        ("ssh://git@host/x.git", "ssh://git@host/x.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("https://github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("/srv/git/repo.git", "/srv/git/repo.git"),
    ],
)
def test_strip_credentials(url: str, clean: str) -> None:
    assert strip_credentials(url) == clean


def test_a_prepared_runs_config_never_holds_a_credential_from_the_command_line(tmp_path):
    import yaml

    from repro.runs.prepare import prepare_run

    secret = "ghp_" + "a1b2c3d4e5" * 4
    argv = ["repro", "run", "--repo", f"https://user:{secret}@host/x.git", "--token", secret]
    entry = prepare_run("smoke", [], runs_dir=tmp_path, argv=argv, git_sha="0000000")
    config = (Path(entry.run_dir) / "config.yaml").read_text()
    assert secret not in config and secret not in str(entry.argv)
    assert yaml.safe_load(config)["argv"][:3] == ["repro", "run", "--repo"]
