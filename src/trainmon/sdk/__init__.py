"""The reporting SDK behind ``import trainmon``: standard library only.

``run`` (the public Run), ``flusher`` (the background thread that batches and delivers),
``transport`` (keep-alive HTTP), ``journal`` (on-disk spill and ``trainmon sync``),
``values`` (number checks and JSON encoding) and ``track`` (the tqdm-like wrapper).
"""
