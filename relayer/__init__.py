"""The per-institution daemon: config, store, chain watchers, pipeline, admin API and the CLI."""
