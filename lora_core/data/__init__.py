"""Samples and what they are made of: the sample type, dataset readers, slicing, coordinates, agent answers, images."""
