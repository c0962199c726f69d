"""The asyncio engine: a worker that serves a socketio.AsyncServer, an ASGI app (FastAPI,
Starlette...) holding one, or an egg-style app directory on the framework's asyncio shell, on
the connections the master hands over (issue 15).

``python -m sioctl.worker.aio`` is this engine's worker, as ``python -m sioctl.worker`` is
eventlet's; the master picks one (cluster/engine_probe.py, cluster/worker_process.py) and never
imports either. Modules: :mod:`.main` (the process: boot, ready, heartbeat, drain),
:mod:`.channel` (the master channel on the event loop), :mod:`.serving` (uvicorn's protocols
on each connection, the drain gate, client addresses), :mod:`.lifespan` (the ASGI lifespan),
:mod:`.app` (loading the app and joining the workers through Redis), :mod:`.appdir` (an app
directory with the worker's plugins).
"""
