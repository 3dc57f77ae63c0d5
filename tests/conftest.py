"""Settings for every test tier."""
from __future__ import annotations

import os

# OpenVINO's and NNCF's telemetry send an event per conversion and compression, each from a subprocess the
# caller waits up to 3 s for when there is no network (this machine, an offline CI runner). Both switch it
# off in CI (their ``disable_in_ci``), which is what a test run is; step processes inherit the environment.
os.environ.setdefault("CI", "true")
