# Sessions kept in Redis: the cookie carries only a signed id.
session = {"store": "redis", "max_age": 600, "redis_prefix": "fwapp:sess:"}
