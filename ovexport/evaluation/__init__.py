"""Accuracy of bundles against a reference on an eval set: eval sets, the reference cache, scoring.

``ovexport compare`` (``ovexport/compare``) and the ``validate`` step use these pieces.
"""
