"""The client sync engine (DESIGN section 7): Qt-free, enforced by import-linter."""
