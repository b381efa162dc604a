"""v5 meta-learning: pure numpy/scipy estimators over query results (no I/O).

* ``series``: daily edge series per pattern from ``marts.pattern_daily_series``;
* ``halflife`` (5.2): how fast each pattern's edge decays, with an interval;
* ``factors`` (5.3): overlapping patterns grouped into latent factors;
* ``regime_weights`` (5.1): per-regime weights of the edge factors, fitted out of sample;
* ``refit``: one refit of all three and what the lever engine takes from it.
"""
