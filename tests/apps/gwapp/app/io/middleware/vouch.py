"""The app's own authentication (env "vouch"): ``auth.token`` "user:<id>" logs in user <id>.

A stand-in for a real login check: it vouches for the gateway userId with ``ctx.user_id``.
"""


def vouch(app):
    def middleware(ctx, next):
        token = ctx.auth.get("token") if isinstance(ctx.auth, dict) else None
        if token is not None:
            if not isinstance(token, str) or not token.startswith("user:"):
                raise PermissionError("bad token")
            ctx.user_id = token[len("user:"):]
        next()

    return middleware
