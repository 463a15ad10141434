"""The training sandbox: a local CSOS enrollment portal / CA and training suppliers over HTTPS on loopback.

Only the CLI, the training-mode starter and tests import this package (DESIGN.md §2). The HTTP API is documented in
``docs/sandbox-api.md``.
"""

from app.sandbox.server import SandboxError, SandboxHandle, SandboxRegistrationInfo, start_sandbox
from app.sandbox.suppliers import SandboxSupplier

__all__ = ["SandboxError", "SandboxHandle", "SandboxRegistrationInfo", "SandboxSupplier", "start_sandbox"]
