"""The model's own files: YAMNet's weights (h5, DRQ or TF Hub .tflite), the Keras float model built from
them, the .tflite flatbuffer reader, TFLite Micro on the host, and the class-map check. Nothing here knows
about quantization recipes, the chip or the firmware.
"""
