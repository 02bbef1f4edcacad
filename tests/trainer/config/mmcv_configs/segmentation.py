# An mmseg config: iteration-based, poly decay with a floor, evaluation every N iterations.
_base_ = [
    "_base_/models/toy_net.py", "_base_/datasets/toy_bs8.py", "_base_/schedules/schedule_80k.py",
    "_base_/seg_runtime.py",
]
data = dict(samples_per_gpu=4)
runner = dict(type="IterBasedRunner", max_iters=200)
checkpoint_config = dict(by_epoch=False, interval=100)
evaluation = dict(interval=100, metric="mIoU", pre_eval=True)
