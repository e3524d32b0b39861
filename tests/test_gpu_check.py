"""The device check (`make gpu-check`) where it can run here: its refusals and its parsing.
On a GPU machine it runs for real; its JSON goes under benchmarks/results/."""

import pytest
import torch

from benchmarks import gpu_check


def test_pytest_summary_is_read_as_numbers():
    out = "....\n  a line\n12 passed, 3 skipped, 1 failed, 40 deselected in 81.20s (0:01:21)\n"
    assert gpu_check.pytest_counts(out) == {"passed": 12, "skipped": 3, "failed": 1, "deselected": 40}
    assert gpu_check.pytest_counts("") == {}


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the check runs instead of refusing")
def test_without_a_gpu_it_refuses_with_one_line(capsys, tmp_path):
    assert gpu_check.main(["--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA GPU is visible" in err[0]
    assert not (tmp_path / "x.json").exists()


def test_unknown_steps_are_refused(capsys):
    assert gpu_check.main(["--skip", "kernels,bogus"]) == 2
    assert "unknown step bogus" in capsys.readouterr().err
