# mmcls-style data settings, with a small data set built by an import path.
dataset_type = "tests.conftest.toy_dataset"
data = dict(
    samples_per_gpu=8,
    workers_per_gpu=0,
    train=dict(type=dataset_type, n=96, seed=0),
    val=dict(type=dataset_type, n=48, seed=1),
    test=dict(type=dataset_type, n=48, seed=2),
)
