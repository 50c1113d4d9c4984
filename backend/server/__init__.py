"""The remote backend: FastAPI over the same Backend (DESIGN section 8)."""
