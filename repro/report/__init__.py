"""Renderings of a ``Comparison``: terminal, Markdown and self-contained HTML."""
