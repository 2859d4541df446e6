"""Report stage, the tables: one module per family, each written as CSV (full precision, for
machines) and as Markdown and HTML (rounded, readable headers, the notes a reader needs). The
Snakemake report shows .html in place but offers .csv and .md only as downloads, so the report
embeds the .html.

``perplexity`` (the runs, and perplexity by experiment and mode), ``comparisons``, ``sweeps``,
``provenance`` and ``predictions`` are the families; ``render`` shows a table in Markdown and
HTML, and ``notes`` holds what several of them say.
"""
