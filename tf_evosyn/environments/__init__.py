"""Environmental factor models F(E): constant factors, synapse/layer budgets, FLOPs and
latency budgets, channel alignment and cluster floors; ``base.register`` adds your own.
"""
