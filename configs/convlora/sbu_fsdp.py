# Conv-LoRA on SAM ViT-H for SBU, trained with FSDP through mmengine's
# FlexibleRunner instead of DDP (see docs/faults.md, "FSDP"):
#   bash tools/dist_train.sh configs/convlora/sbu_fsdp.py 8
# FSDP shards the frozen SAM weights over the GPUs (one FSDP unit per ViT
# block); use_orig_params=True lets frozen and trainable (LoRA, experts)
# parameters share a unit. Checkpoints are gathered on rank 0 and hold the
# trainable weights only, so they load into configs/convlora/sbu.py (and
# tools/test.py) unchanged.
_base_ = ['./sbu.py']
runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        type='MMFullyShardedDataParallel',
        use_orig_params=True,
        auto_wrap_policy=dict(type='sam_vit_block_wrap_policy')),
    state_dict_cfg='full')
# mmengine's gradient clipping sees only each process's shard under FSDP:
# clip by the global norm instead; FSDP renames the modules of its units
custom_hooks = [
    dict(type='FSDPTrainableCheckpointHook'),
    dict(type='ParamCountHook'),
    dict(type='ExactResumeHook'),
    dict(type='NonFiniteLossHook', action='raise'),
    dict(type='FSDPClipGradHook'),
]
