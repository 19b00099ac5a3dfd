"""Build a trained model from its config and checkpoint for inference."""
import copy
import os
from typing import Optional, Union

import torch
from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, MODELS

from ..models.utils import load_peft_checkpoint

ConfigLike = Union[str, os.PathLike, Config]


def _loaders(cfg: Config, key: str) -> list:
    loaders = cfg.get(key)
    if not loaders:
        return []
    return list(loaders) if isinstance(loaders, (list, tuple)) else [loaders]


def inference_config(config: ConfigLike,
                     cfg_options: Optional[dict] = None) -> Config:
    """A copy of ``config`` (file or Config) with ``cfg_options`` merged,
    without ``embedding_source`` and the pipeline steps feeding it."""
    cfg = copy.deepcopy(config) if isinstance(config, Config) else \
        Config.fromfile(os.fspath(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    source = cfg.model.backbone.pop('embedding_source', None)
    if source is None:
        return cfg
    source_cls = MODELS.get(source['type']) if isinstance(
        source['type'], str) else source['type']
    feeders = getattr(source_cls, 'pipeline_steps', ())
    pipelines = [cfg.get('train_pipeline'), cfg.get('test_pipeline')]
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        pipelines += [
            loader.dataset.get('pipeline') for loader in _loaders(cfg, key)
            if 'dataset' in loader
        ]
    for pipeline in pipelines:
        if pipeline:
            pipeline[:] = [t for t in pipeline if t.get('type') not in feeders]
    return cfg


def get_test_pipeline(cfg: Config) -> list:
    """The (first) test dataloader's pipeline, else ``cfg.test_pipeline``."""
    for loader in _loaders(cfg, 'test_dataloader'):
        pipeline = loader.get('dataset', {}).get('pipeline')
        if pipeline:
            return pipeline
    if cfg.get('test_pipeline'):
        return cfg.test_pipeline
    raise ValueError('The config has neither test_dataloader.dataset.pipeline '
                     'nor test_pipeline: nothing says how to prepare images.')


def config_test_dataset(cfg: Config) -> Optional[BaseDataset]:
    """The config's (first) test dataset, built without reading its files
    (``lazy_init``), or None if it is no mmengine ``BaseDataset``."""
    for loader in _loaders(cfg, 'test_dataloader'):
        dataset = dict(loader.get('dataset', {}))
        cls = DATASETS.get(dataset.get('type', ''))
        if isinstance(cls, type) and issubclass(cls, BaseDataset):
            return DATASETS.build(dict(dataset, pipeline=[], lazy_init=True))
    return None


def config_dataset_meta(cfg: Config) -> Optional[dict]:
    """Classes and palette of the config's (first) test dataset."""
    dataset = config_test_dataset(cfg)
    meta = dataset.metainfo if dataset is not None else {}
    if not meta.get('classes'):
        return None
    return dict(classes=meta['classes'], palette=meta.get('palette'))


def init_segmentor(config: ConfigLike,
                   checkpoint: Optional[str] = None,
                   device: str = 'cpu',
                   cfg_options: Optional[dict] = None) -> torch.nn.Module:
    """mmseg's ``init_model`` for this plugin, via :func:`inference_config`.

    Args:
        config (str | Config): The config the checkpoint was trained with.
        checkpoint (str, optional): Written by training or exported; None
            keeps the weights the config builds.
        device (str): E.g. 'cpu', 'cuda:0'.
        cfg_options (dict, optional): Config overrides.
    """
    cfg = inference_config(config, cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.train_cfg = None
    model = MODELS.build(model_cfg)
    meta = load_peft_checkpoint(model, checkpoint) if checkpoint else {}
    dataset_meta = meta.get('dataset_meta') or config_dataset_meta(cfg)
    if dataset_meta is not None:
        model.dataset_meta = dict(
            classes=dataset_meta.get('classes'),
            palette=dataset_meta.get('palette'))
    model.cfg = cfg
    return model.to(device).eval()
