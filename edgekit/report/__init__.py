"""Manifests and reports of export runs (edgekit.json, report.md / .json / .png)."""
