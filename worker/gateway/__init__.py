"""The signed message gateway: ``requestMessage``/``responseMessage`` between clients, and
``POST /api/transportMessage``. ``wire`` (the wire format, pure stdlib) is usable by Python
clients too; ``protocol`` is its former name, kept for their imports."""
