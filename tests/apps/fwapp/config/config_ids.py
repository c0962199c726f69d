# Custom socket ids: the handshake's ?uid= gives the id.
from urllib.parse import parse_qs


def _id_from_query(environ):
    uid = parse_qs(environ.get("QUERY_STRING", "")).get("uid", [""])[0]
    return f"user-{uid}" if uid else None


io = {"generate_id": _id_from_query}
