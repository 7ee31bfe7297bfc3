"""The gRPC transport: ``inference.GRPCInferenceService`` on grpcio's asyncio server.

Stubs are generated from ``generated/grpc_predict_v2.proto`` and committed; see
``stubs.py``. This package never shadows the ``grpc`` library: imports are absolute.
"""
