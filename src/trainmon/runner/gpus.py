"""How many jobs the local executor runs at once by default: one per GPU, else one."""

from __future__ import annotations

import re
import shutil
import subprocess

_GPU_LINE = re.compile(r"^GPU \d+:", re.MULTILINE)


def parse_gpu_list(output: str | None) -> int:
    """The number of GPUs in ``nvidia-smi -L`` output (``GPU 0: NVIDIA ... (UUID: ...)``)."""
    if not output:
        return 0
    return len(_GPU_LINE.findall(output))


def choose_max_concurrent(gpus: int) -> int:
    """One job per GPU; a machine without GPUs still runs one job at a time."""
    return max(1, gpus)


def count_gpus(timeout: float = 5.0) -> int:
    """GPUs that ``nvidia-smi -L`` lists; 0 if it is missing, fails or hangs."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0
    try:
        done = subprocess.run(
            [exe, "-L"], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return 0
    return parse_gpu_list(done.stdout) if done.returncode == 0 else 0
