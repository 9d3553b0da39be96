"""The INT8 recipe: calibration ranges and recipes, cross-layer equalization, rounding optimisation, the
numpy simulation of TFLite's int8 arithmetic, and the flatbuffer writer. Built on model/ only.
"""
