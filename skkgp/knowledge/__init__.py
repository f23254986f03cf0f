"""Knowledge in the training loss: evidence maps, the knowledge-guided loss terms, and the
classifier that recovers a pruned network with them.

- :mod:`skkgp.knowledge.evidence`: Grad-CAM-family evidence reduced to electrodes;
- :mod:`skkgp.knowledge.losses`: region share, region-wise loss, sample weights;
- :mod:`skkgp.knowledge.recovery`: :class:`KnowledgeGuidedClassifier`.
"""

from skkgp.knowledge.evidence import guided_gradcam
from skkgp.knowledge.losses import (
    KnowledgeTerms,
    knowledge_guided_loss,
    knowledge_guided_terms,
    normalize_evidence,
    region_loss,
    region_share,
    sample_weights,
)
from skkgp.knowledge.recovery import KnowledgeGuidedClassifier

__all__ = [
    "KnowledgeGuidedClassifier",
    "KnowledgeTerms",
    "guided_gradcam",
    "knowledge_guided_loss",
    "knowledge_guided_terms",
    "normalize_evidence",
    "region_loss",
    "region_share",
    "sample_weights",
]
