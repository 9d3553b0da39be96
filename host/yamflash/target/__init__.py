"""The firmware from a model: `gen` (headers, partition table, sdkconfig from model.json, through the
templates/ shipped in this package), `build` (PlatformIO or idf.py), partitions and board profiles, the tensor
arena the chip needs (measured on the host with the firmware's own code and ESP-NN), and the ctypes binding to
the portable C core (yf_core).
"""
