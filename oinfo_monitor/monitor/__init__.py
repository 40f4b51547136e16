"""The monitor layer: everything that touches a live `torch.nn` model while it trains.

`capture` runs the probe through the model with temporary hooks and restores everything;
`options` validates the monitor's options once; `monitor` holds `OInfoMonitor`, which only
schedules and orchestrates (capture → estimators → search → sinks → phases); `records` defines the
history records and their file; `sinks` writes them (TensorBoard owns every tag); `figures` draws
them; `phases` tracks feature learning → emergence → decoupling on the curves.
"""

from oinfo_monitor.monitor.monitor import HISTORY_FILE, OInfoMonitor
from oinfo_monitor.monitor.options import OInfoMonitorWarning, check_monitor_options
from oinfo_monitor.monitor.records import Evaluation

__all__ = [
    "HISTORY_FILE",
    "Evaluation",
    "OInfoMonitor",
    "OInfoMonitorWarning",
    "check_monitor_options",
]
