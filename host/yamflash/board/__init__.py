"""Everything that talks to a board, real or virtual: the serial protocol, the client, port discovery,
flash, monitor, validate, bench, the virtual board (sim/) and the pytest plugin for hardware-in-the-loop tests
(hil/).
"""
