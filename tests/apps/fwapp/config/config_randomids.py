# Custom socket ids that differ at every handshake (a generator that draws them): a recovered
# socket must keep the id it had, not get a new one.
import uuid


def _random_id(environ):
    return f"rnd-{uuid.uuid4().hex}"


io = {"generate_id": _random_id}
