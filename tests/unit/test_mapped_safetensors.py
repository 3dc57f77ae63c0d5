"""A safetensors shard as read-only views (``util.mapped_safetensors``): what keeps the full-size PyTorch reference's
16-bit weights out of the validate step's resident memory."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from ovexport.util.mapped_safetensors import MappedSafetensors

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from proc_status import rss_file  # noqa: E402

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")

ROWS = 4096            # x 2048 bf16 = 16 MiB



@pytest.fixture
def shard(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {"big": torch.randn(ROWS, 2048, generator=g).to(torch.bfloat16),
               "odd": torch.arange(3, dtype=torch.int8),                    # 3 bytes: the next tensor misaligned
               "small": torch.randn(5, generator=g), "empty": torch.zeros(0)}
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path))
    return path


def test_views_equal_the_stored_tensors(shard):
    stored = load_file(str(shard))
    m = MappedSafetensors(shard)
    for name, t in stored.items():
        view = m.tensor(name)
        if view is None:          # only where a view is impossible: empty, or misaligned after the int8 tensor
            assert name == "empty" or m.header[name]["data_offsets"][0] % t.element_size(), name
            continue
        assert view.dtype == t.dtype and torch.equal(view, t), name
        assert m.holds(view)
    assert not m.holds(stored["big"])          # a copy is not a view of the file


@linux_only
def test_released_pages_leave_the_process_and_read_back_the_same(shard):
    m = MappedSafetensors(shard)
    big = m.tensor("big")
    size = big.numel() * big.element_size()
    before = rss_file()
    total = big.float().sum()
    assert rss_file() - before > size * 0.9      # reading the view made its pages resident
    m.release(big)
    assert rss_file() - before < size * 0.1
    assert big.float().sum() == total
    copy = big.clone()
    m.release(copy)                               # not a view of the file: left alone
    assert torch.equal(copy, big)
