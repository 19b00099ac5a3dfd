default_scope = 'mmseg'
# mmengine's Runner with a quiet console (log_level='DEBUG' shows all)
runner_type = 'QuietRunner'
# Lets mmseg's own tools/train.py and tools/test.py use these configs too.
custom_imports = dict(imports=['mmseg_convlora'], allow_failed_imports=False)
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
# Used only under DDP (tools/dist_train.sh): CAD's BatchNorm synchronised
# (sync_bn), find_unused_parameters True only for Conv-LoRA with grouped
# expert dispatch, and the same on the CPU (gloo)
sync_bn = 'torch'
model_wrapper_cfg = dict(type='SAMDistributedDataParallel')
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=True),
    # a progress line (with ETA) after 2 minutes without one, whatever the
    # logger's interval
    progress=dict(type='ProgressLogHook', max_silence=120),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # mmengine's CheckpointHook made crash-safe (old checkpoints deleted
    # only after the new one is complete, paths relative to the work dir,
    # one run per work dir); validation each epoch keeps the best
    # checkpoint, dataset recipes set save_best/rule for their metric
    checkpoint=dict(
        type='SafeCheckpointHook',
        by_epoch=True,
        interval=1,
        max_keep_ckpts=1,
        save_best='auto'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
log_processor = dict(by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
custom_hooks = [
    # checkpoints hold the trainable weights only; frozen SAM comes from
    # model.sam_checkpoint
    dict(type='TrainableCheckpointHook'),
    dict(type='ParamCountHook'),
    dict(type='DatasetSizeHook'),
    # --resume repeats the interrupted run exactly (RNG state in the
    # checkpoint)
    dict(type='ExactResumeHook'),
    # a NaN/inf loss or gradient stops training before the optimizer step
    # (tools/train.py --nonfinite skip: skip such steps instead); diverged
    # weights stop it before they are saved
    dict(type='NonFiniteLossHook', action='raise'),
]
