"""Qt table models fed incrementally by the sync store."""
