# An mmcls ResNet config, scaled down from 100 to 10 epochs.
_base_ = [
    "_base_/models/toy_net.py", "_base_/datasets/toy_bs8.py",
    "_base_/schedules/imagenet_bs256.py", "_base_/default_runtime.py",
]
lr_config = dict(step=[3, 6, 9])
runner = dict(max_epochs=10)
checkpoint_config = dict(interval=5, max_keep_ckpts=2)
log_config = dict(interval=4, hooks=[dict(type="TextLoggerHook")])
custom_hooks = []
evaluation = dict(interval=1, metric="accuracy")
