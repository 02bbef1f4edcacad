# An mmdet Faster R-CNN 1x config: warm-up, step decay, gradient clipping, fp16, save_best.
_base_ = [
    "_base_/models/toy_net.py", "_base_/datasets/toy_bs8.py",
    "_base_/schedules/schedule_1x.py", "_base_/default_runtime.py",
]
optimizer = dict(lr=0.01)
optimizer_config = dict(_delete_=True, grad_clip=dict(max_norm=35, norm_type=2))
lr_config = dict(warmup_iters=20)  # 12 iterations per epoch here: the warm-up spans 2 epochs
evaluation = dict(interval=2, metric="bbox", save_best="auto")
fp16 = dict(loss_scale=512.0)
