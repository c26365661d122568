"""The load benchmark of the whole pipeline: ``make bench`` (``python -m bench``).

It starts the real stack (uvicorn, the Celery workers, on the local RabbitMQ, Redis and
PostgreSQL) and drives it with an open-loop generator of real WebSocket clients: customers on
``/ws/pickups/`` and every party on ``/ws/notifications/``. See ``docs/benchmark.rst``.
"""
