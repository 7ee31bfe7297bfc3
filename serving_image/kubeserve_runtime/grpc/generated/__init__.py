"""Generated Open Inference Protocol stubs (do not edit; see ``grpc/stubs.py``)."""
