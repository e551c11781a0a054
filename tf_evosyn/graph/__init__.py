"""The channel dependency graph of a Keras model: which layers read which channels, which
clusters are coupled (residual adds, depthwise channels, concatenations), and their groups.
"""
