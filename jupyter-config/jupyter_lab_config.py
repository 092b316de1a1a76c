"""JupyterLab's server settings that need code (the rest are in jupyter_lab_config.json).

Kernels talk to the server over IPC sockets in Jupyter's private runtime folder instead of
loopback TCP ports: no other local user can connect to a learner's kernel, and the server
has no "Kernel is running over TCP without encryption" warning to repeat in the terminal
at every kernel start (papermill's kernels do the same: lib.runner._kernel_config).
"""

import os

from jupyter_core.paths import jupyter_runtime_dir

runtime = jupyter_runtime_dir()
os.makedirs(runtime, mode=0o700, exist_ok=True)
c = get_config()  # type: ignore[name-defined]  # noqa: F821 (provided by Jupyter's config loader)
c.KernelManager.transport = "ipc"
# jupyter_client numbers the sockets after this prefix, skipping ones that exist; the pid
# keeps two servers (two checkouts) apart. A Unix socket path has at most 107 bytes.
c.KernelManager.ip = os.path.join(runtime, f"lab-{os.getpid()}-kernel")
