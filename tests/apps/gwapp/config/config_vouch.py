# The app authenticates its users itself (app/io/middleware/vouch.py) and sets their userId.
io = {"namespace": {"/": {"connection_middleware": ["vouch"]}}}
