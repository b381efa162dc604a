"""Synthetic PM/DM trade history with a known ground truth (see ``model.py``)."""

from leverloop.simulator.model import SimConfig, Simulation, simulate

__all__ = ["SimConfig", "Simulation", "simulate"]
