"""Serving: a FastAPI app with micro-batching and a page that shows attention."""
