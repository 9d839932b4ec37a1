"""The three SPICE stages, each a :class:`skspice.training.Stage` plus a
``train_*`` function that sets up its optimiser and runs the shared loop."""

from .moco import MoCo, MoCoStage, train_feature_model
from .self_label import ClusterHeads, SelfLabelStage, train_self_label
from .semi import SEMI, FixMatchStage, SemiSettings, train_semi

__all__ = [
    "SEMI",
    "ClusterHeads",
    "FixMatchStage",
    "MoCo",
    "MoCoStage",
    "SelfLabelStage",
    "SemiSettings",
    "train_feature_model",
    "train_self_label",
    "train_semi",
]
