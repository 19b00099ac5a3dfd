"""One log line with the number of images each run reads."""
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


def _loop_sizes(loop) -> str:
    """``8`` or ``Kvasir 100, CVC-300 60`` for several named sets."""
    names, loaders = (getattr(loop, k, None) for k in ('names', 'dataloaders'))
    if names and loaders:
        return ', '.join(f'{name} {len(loader.dataset)}'
                         for name, loader in zip(names, loaders))
    return str(len(loop.dataloader.dataset))


@HOOKS.register_module()
class DatasetSizeHook(Hook):
    """Log how many images training, validation and testing read, e.g.
    ``Data: train 32 images, val 8, test 8`` (per named set)."""

    priority = 'LOW'

    def before_train(self, runner) -> None:
        parts = [f'train {len(runner.train_dataloader.dataset)} images']
        if runner.val_loop is not None:
            parts.append(f'val {_loop_sizes(runner.val_loop)}')
        # built now, the test sets' pairs are checked before training
        if runner.test_loop is not None:
            parts.append(f'test {_loop_sizes(runner.test_loop)}')
        runner.logger.info('Data: ' + ', '.join(parts))

    def before_test(self, runner) -> None:
        runner.logger.info(f'Data: test {_loop_sizes(runner.test_loop)} '
                           'images')
