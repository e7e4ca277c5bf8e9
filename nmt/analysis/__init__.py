"""Measuring attention: statistics over weight matrices and word alignments derived from them."""
