"""Text files behind the bundled ``text`` and ``sentences`` corpora (read by path, not imported)."""
