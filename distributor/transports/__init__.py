"""Transports move finished bytes; channels decide what the bytes are. Every channel can run offline on ``file``."""
