"""The FastAPI application: customer WebSocket, REST v1 and the static web widget."""
