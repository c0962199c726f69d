# For the property tests: a refused request is answered but the socket stays connected.
gateway = {"disconnect_on_deny": False}
