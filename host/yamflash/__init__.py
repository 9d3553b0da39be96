"""yamflash: YAMNet on an ESP32-S3, from weights to a board that reports detections over serial."""

__version__ = "0.1.0"
