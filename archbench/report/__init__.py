"""Reading runs: Pareto ranks, hypervolume, leaderboards, plots and exports.
"""
