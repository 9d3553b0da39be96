"""Hardware-in-the-loop testing: one pytest suite for a real board or the virtual one (``--port``)."""
