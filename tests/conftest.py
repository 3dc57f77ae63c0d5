"""Settings for every test tier."""
from __future__ import annotations

import os

# OpenVINO's and NNCF's telemetry send an event per conversion and compression, each from a subprocess the
# caller waits up to 3 s for when there is no network (this machine, an offline CI runner). Both switch it
# off in CI (their ``disable_in_ci``), which is what a test run is; step processes inherit the environment.
os.environ.setdefault("CI", "true")

# Under pytest-xdist (the README's test command runs ``-n 2``) the workers share the cores. torch's OpenMP threads
# spin at their barriers, so two workers with a thread per core each slow each other's small ops 5-50x (measured:
# the tiny image encoder 10 ms alone, 85-540 ms next to another busy process). Give each worker its share of the
# cores, before torch is imported here or in a step process (which inherits the environment).
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))
