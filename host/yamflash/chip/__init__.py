"""What the ESP32-S3 does with a model that the host does not: which ESP-NN kernel each op takes and the
scratch it asks for, where bytes live (internal RAM, PSRAM, flash through the cache), the latency estimate and
its calibration on published figures, and `yamflash inspect`'s report. Estimates, never chip measurements.
"""
