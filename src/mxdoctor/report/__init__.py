"""Renderers: a Diagnosis to text (rich), JSON and the checks catalogue. They never compute findings."""
