"""From weights to a model the firmware runs: `yamflash convert` (YAMNet to INT8, calibrated on real
audio, with its fidelity report) and the cache that skips a conversion already done.
"""
