"""The factor report: ``tables`` (the seed's table as text), ``plots`` (PNG figures) and ``render``
(Markdown and self-contained HTML), each a pure function of the dict ``metrics.summarize`` returns or
of the eval tables. ``evaluation.store`` writes them to disk.
"""
