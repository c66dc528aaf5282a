"""The bundled demo dataset: see generate.py."""
