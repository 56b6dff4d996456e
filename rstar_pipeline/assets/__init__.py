"""Dagster assets: thin wrappers that read inputs, call the core stages and attach metadata."""
