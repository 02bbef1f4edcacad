"""Data: resumable and distributed samplers, and the shipped digits data set."""
