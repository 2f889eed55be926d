"""One module per tab of the main window."""

from .configure_tab import ConfigureTab
from .data_tab import DataTab
from .generate_tab import GenerateTab
from .inspect_tab import InspectTab
from .train_tab import TrainTab

__all__ = ["ConfigureTab", "DataTab", "GenerateTab", "InspectTab", "TrainTab"]
