# CAD on SAM ViT-B for SBU, trained from cached frozen-encoder embeddings:
# the image encoder is never built, each step runs only the CAD adapter and
# the mask decoder. Build the cache once (both flips of every train/val
# image; it records the SAM checkpoint's SHA-256 and the input size, and a
# cache from another checkpoint or size is refused):
#   python tools/cache_embeddings.py configs/cad/sbu_vit-b_cached.py
#   python tools/train.py configs/cad/sbu_vit-b_cached.py
# Checkpoints are interchangeable with configs/cad/sbu_vit-b.py (same
# trainable weights), e.g. to test with the encoder on new images.
_base_ = ['./sbu_vit-b.py']
embedding_cache_dir = 'work_dirs/embedding_cache/sbu_vit-b_1024'
img_scale = (1024, 1024)
model = dict(
    backbone=dict(
        embedding_source=dict(
            type='CachedEmbeddings', dir=embedding_cache_dir)))
train_pipeline = [
    dict(type='LoadImageFromFile', color_type='unchanged'),
    dict(type='CheckImage'),
    dict(type='ResizeCADImage', size=512),  # CAD's input image
    dict(type='LoadBinaryAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackCADInputs'),
    # after packing: reads the flip decision from the data sample
    dict(type='LoadCachedEmbedding', cache_dir=embedding_cache_dir),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='unchanged'),
    dict(type='CheckImage'),
    dict(type='ResizeCADImage', size=512),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadBinaryAnnotations'),
    dict(type='PackCADInputs'),
    dict(type='LoadCachedEmbedding', cache_dir=embedding_cache_dir),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
