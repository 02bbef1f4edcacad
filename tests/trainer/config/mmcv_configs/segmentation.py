# An mmseg config: iteration-based, poly decay with a floor, evaluation every N iterations.
_base_ = [
    "_base_/models/toy_net.py", "_base_/schedules/schedule_80k.py", "_base_/seg_runtime.py",
]
dataset_type = "tests.conftest.toy_dataset"
data = dict(
    samples_per_gpu=4,
    workers_per_gpu=0,
    train=dict(type=dataset_type, n=96, seed=0),
    val=dict(type=dataset_type, n=48, seed=1),
    test=dict(type=dataset_type, n=48, seed=2),
)
runner = dict(type="IterBasedRunner", max_iters=200)
checkpoint_config = dict(by_epoch=False, interval=100)
evaluation = dict(interval=100, metric="mIoU", pre_eval=True)
