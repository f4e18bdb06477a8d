"""The local runner: supervisor processes that launch, watch and cancel training commands, the
in-server executor that schedules them, log capture and progress parsed from tqdm output.

Nothing here is imported by the SDK; ``supervisor`` runs as its own process.
"""
