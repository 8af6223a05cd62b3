"""The judge: one comparison core, the bands, group statistics and the causes, as data."""
