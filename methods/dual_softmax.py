"""The ``dual_softmax`` method: learned keypoints (``method.features``, DISK by default) matched by the dual
softmax of DeDoDe (Edstedt et al., 3DV 2024). The unit descriptors' similarities, times ``inv_temperature``,
are normalised by a softmax over each row and over each column; their product P is the match probability.
A pair is kept when its P is the largest of its row and of its column and above ``threshold``; its score is
P. Unlike plain mutual nearest neighbours, a keypoint that resembles many in the other image gets a low P
(its column's softmax is spread), so repeated texture gives fewer, surer matches."""

from __future__ import annotations

from benchmark.config_types import Key
from benchmark.registry import METHODS

from .learned import KEYPOINT_CONF, TorchMatcher


@METHODS.register("dual_softmax")
class DualSoftmaxMatcher(TorchMatcher):
    """Learned keypoints matched by DeDoDe's dual softmax: mutual maxima of the match probability."""

    default_conf = {
        **KEYPOINT_CONF,
        "inv_temperature": 20.0,  # DeDoDe's
        "threshold": 0.01,  # the least match probability kept (DeDoDe's)
    }
    conf_types = {"inv_temperature": Key(float, above=0), "threshold": Key(float, min=0, max=1)}

    def _pair(self, feats0, feats1, input0, input1):
        import torch

        d0, d1 = feats0["descriptors"].float(), feats1["descriptors"].float()
        if len(d0) == 0 or len(d1) == 0:
            return torch.zeros((0, 2), dtype=torch.long), torch.zeros(0)
        similarity = d0 @ d1.T * self.conf["inv_temperature"]
        prob = similarity.softmax(dim=0) * similarity.softmax(dim=1)
        mutual = (prob == prob.max(dim=1, keepdim=True).values) & (prob == prob.max(dim=0, keepdim=True).values)
        pairs = torch.nonzero(mutual & (prob > self.conf["threshold"]))
        return pairs, prob[pairs[:, 0], pairs[:, 1]]
