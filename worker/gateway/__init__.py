"""The signed message gateway: ``requestMessage``/``responseMessage`` between clients, and
``POST /api/transportMessage``. ``protocol`` (pure stdlib) is usable by Python clients too."""
