"""``ovexport compare``: accuracy, size and speed of compression settings, against one cached reference.

``sweep`` turns ``--sweep``/``--variant`` options into variant recipes, ``build`` makes their IRs through
the step engine (the run cache shares everything upstream of ``compress``), ``evaluate`` scores a variant
against the reference, ``report`` writes the table, JSON, CSV, plot and Markdown summary, and ``run`` ties
them together, resumably.
"""
