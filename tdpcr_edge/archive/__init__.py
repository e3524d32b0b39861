"""Whole archives: scenes streamed into one folder, in this process (``run``) or on a Ray
cluster (``on_ray``), each scene one job (``job``)."""
