"""Tier-3 model training and validation, the oncofed side (no torch here).

The learning itself (Flower strategies, PyTorch models, image loading) lives in the
`oncofed-learning` distribution (`learning/` in this repository), installed in its own venv
because Flower pins web libraries below oncofed's. Hub and node run it as a worker process
(`worker.py`) and talk to it over its pipes; the task kinds they exchange are in `tasks.py`.
"""
