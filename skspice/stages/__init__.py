"""The three SPICE stages, each a :class:`skspice.training.Stage` plus a
``train_*`` function that sets up its optimiser and runs the shared loop."""

from .moco import MoCo, MoCoStage, train_feature_model
from .self_label import (
    SELF,
    ClusterHeads,
    SelfLabelSettings,
    SelfLabelStage,
    train_self_label,
)
from .semi import SEMI, FixMatchStage, SemiSettings, train_semi

__all__ = [
    "SELF",
    "SEMI",
    "ClusterHeads",
    "FixMatchStage",
    "MoCo",
    "MoCoStage",
    "SelfLabelSettings",
    "SelfLabelStage",
    "SemiSettings",
    "train_feature_model",
    "train_self_label",
    "train_semi",
]
