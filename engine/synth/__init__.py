"""Synthetic heads: a procedural 3D head renderer with exact camera, depth, labels and attributes."""
