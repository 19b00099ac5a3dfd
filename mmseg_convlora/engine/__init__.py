from .atomic_files import AtomicLocalBackend, atomic_write  # noqa: F401
from .distributed import *  # noqa: F401,F403
from .fsdp import *  # noqa: F401,F403
from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .runner import *  # noqa: F401,F403
