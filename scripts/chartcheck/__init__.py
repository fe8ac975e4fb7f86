"""Checks of the Helm chart charts/mcp-oauth-operator, run by scripts/check-chart.py."""
