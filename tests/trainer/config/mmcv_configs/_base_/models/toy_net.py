# The model part of an MMCV config: the runner never read it, the migration keeps it.
model = dict(type="tests.conftest.ToyNet", dropout=0.0)
