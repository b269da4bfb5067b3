"""One short function per command, ``cmd_<name>(args, out) -> exit code``.

Each calls one public core function and prints its result through :class:`..output.Output`;
the parser (:mod:`..parser`) takes a command's name from its function's and its help from
the first paragraph of its docstring.
"""

from __future__ import annotations

from .catalog import cmd_list, cmd_prune
from .dumps import cmd_backup, cmd_backup_to_db, cmd_inspect, cmd_restore, cmd_verify
from .keys import cmd_rekey
from .migrations import cmd_current, cmd_downgrade, cmd_heads, cmd_upgrade
from .rehearsal import cmd_rehearse

__all__ = [
    "cmd_backup",
    "cmd_backup_to_db",
    "cmd_current",
    "cmd_downgrade",
    "cmd_heads",
    "cmd_inspect",
    "cmd_list",
    "cmd_prune",
    "cmd_rehearse",
    "cmd_rekey",
    "cmd_restore",
    "cmd_upgrade",
    "cmd_verify",
]
