"""Using a trained run (the use rules): ``predict`` images or the test set, ``export`` to ONNX."""
