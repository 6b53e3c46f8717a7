"""Transports carry the algorithm's messages: ``flower`` (Flower on Ray) and ``inprocess``."""
