"""Scoring trained runs on the test set (the evaluate and ensemble rules).

``scores`` evaluates one run (metrics, costs, per-image predictions); ``ensemble`` combines
runs, their members and weights chosen on the validation split only.
Imports nothing from reporting/ or use/.
"""
