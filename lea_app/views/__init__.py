"""LEA's widgets: the main window, pages, editors and dialogs."""
