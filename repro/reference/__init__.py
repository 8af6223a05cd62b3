"""The reference workload: model, data, determinism, training loop and launcher."""
