"""Helpers shared by the tests (and the benchmarks): none of them is a test module.

- ``services``: real PostgreSQL and Redis servers (the ``postgres``/``redis`` fixtures), ``free_port``.
- ``servers``: ``chatbot serve`` in child processes (``ServerProcess``, ``scaleout_env``), ``WsClient``.
- ``hub_app``: one ``RedisHub`` behind real WebSockets, without models.
- ``app``: the real app in FastAPI's TestClient, agents, logins, conversations.
- ``integration``: API keys, signed customer identities.
- ``browser``: Debian's headless Chromium against a ``chatbot serve`` process (skips the module without it).
"""
