"""Turning runs into the report: tables, figures, the HTML page and HDRNet's explainer figure."""

FEATURED_MODEL = "hdrnet"  # the report's subject: first row of each table, left of each comparison, the grid sweep
